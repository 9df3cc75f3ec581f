// The receipt command (and so libreceipt) against a real receiptd: fetch,
// verify, confirm, keep the receipt; spool and flush when the confirm URL is
// unreachable; corruption in transit; a large file in constant memory.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startServer, freePort, tempDir } from './lib/server.mjs';
import { fetchJwks, verifyReceipt } from './lib/client.mjs';
import { runCli, clientDirs, ownTempDir, removeOwnTempDirs, parseJsonLine, cliIsSanitized } from './lib/cli.mjs';

const BIN = crypto.randomBytes(64 * 1024);
const TEXT = 'hello receipt\n';
const BIG_SIZE = 200 * 1024 * 1024;
const RSS_LIMIT_KB = 64 * 1024;

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('base64url');

function sha256File(file) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    fs.createReadStream(file).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('base64url'))).on('error', reject);
  });
}

/** Files in dir whose name marks an unfinished write. */
function leftovers(dir) {
  return fs.readdirSync(dir).filter((n) => n.includes('.tmp-'));
}

/**
 * A TCP proxy to target that flips one byte of the body of the first
 * response of each connection that carries a Receipt-Delivery header (a
 * delivery); everything else passes unchanged.
 */
async function flippingProxy(targetPort, offset = 100) {
  const port = await freePort();
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    let head = Buffer.alloc(0);
    let state = 'head'; // head -> body (counting to the flip) -> pass
    let toFlip = -1;
    upstream.on('data', (chunk) => {
      if (state === 'pass') {
        client.write(chunk);
        return;
      }
      if (state === 'head') {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headers = head.subarray(0, end).toString('latin1');
        if (!/\r\nreceipt-delivery:/i.test(headers)) {
          state = 'pass';
          client.write(head);
          return;
        }
        toFlip = end + 4 + offset;
        chunk = head;
        state = 'body';
      }
      if (toFlip < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[toFlip] ^= 0x01;
        state = 'pass';
      } else {
        toFlip -= chunk.length;
      }
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
    upstream.on('error', close);
    client.on('error', close);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

describe('receipt command line', () => {
  after(() => {
    removeOwnTempDirs();
  });

  test('keygen and id', async () => {
    const c = await clientDirs({ withKey: false });
    const made = await runCli(['keygen', '--key', c.key]);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    assert.match(id, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(fs.statSync(c.key).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(c.key, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);

    const shown = await runCli(['id', '--key', c.key]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout.trim(), id);

    const again = await runCli(['keygen', '--key', c.key]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists/);
    assert.equal((await runCli(['id', '--key', c.key])).stdout.trim(), id);

    const forced = await runCli(['keygen', '--key', c.key, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(forced.stdout.trim(), id);

    fs.chmodSync(c.key, 0o644);
    const exposed = await runCli(['id', '--key', c.key]);
    assert.equal(exposed.code, 1);
    assert.match(exposed.stderr, /chmod 600/);
  });

  test('the default key lives under XDG_STATE_HOME', async () => {
    const xdg = ownTempDir('receipt-xdg-');
    const made = await runCli(['keygen'], { env: { XDG_STATE_HOME: xdg } });
    assert.equal(made.code, 0, made.stderr);
    const key = path.join(xdg, 'receipt', 'client-key.pem');
    assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(xdg, 'receipt')).mode & 0o077, 0);
    const shown = await runCli(['id'], { env: { XDG_STATE_HOME: xdg } });
    assert.equal(shown.stdout.trim(), made.stdout.trim());
  });

  test('usage errors exit 2; --help documents the exit codes', async () => {
    for (const args of [[], ['nonsense'], ['fetch'], ['fetch', 'a', 'b'], ['fetch', '--bogus', 'http://x/'], ['id', 'extra'], ['fetch', '-o']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /receipt:/);
    }
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    for (const code of ['0', '1', '2', '3', '4']) assert.match(help.stdout, new RegExp(`^  ${code}  `, 'm'));
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^receipt \d+\.\d+\.\d+/);
  });

  describe('against one server', () => {
    let srv;
    let jwks;
    before(async () => {
      srv = await startServer({ files: { 'a.bin': BIN, 'docs/t.txt': TEXT, 'p.html': '<html><body>x</body></html>' } });
      jwks = await fetchJwks(srv.url);
    });
    after(async () => {
      assert.equal((await srv.stop()).code, 0, srv.log());
    });

    test('fetch, confirm, keep and verify the receipt', async () => {
      const c = await clientDirs();
      const out = c.out('a.bin');
      const r = await runCli(['fetch', `${srv.url}/a.bin`, '-o', out, '--json', ...c.args()]);
      assert.equal(r.code, 0, r.stderr);
      const j = parseJsonLine(r.stdout);
      assert.match(j.delivery, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(j.status, 'confirmed');
      assert.equal(j.sha256, sha256(BIN));
      assert.equal(j.size, BIN.length);
      assert.equal(j.path, out);
      assert.deepEqual(fs.readFileSync(out), BIN);
      assert.deepEqual(leftovers(c.dir), []);

      // The receipt, checked by an independent JOSE implementation.
      const { payload, header } = await verifyReceipt(jwks, j.receipt);
      assert.equal(header.typ, 'receipt+jwt');
      assert.equal(payload.delivery, j.delivery);
      assert.equal(payload.status, 'confirmed');
      assert.equal(payload.content.path, '/a.bin');
      assert.equal(payload.content.sha256, sha256(BIN));
      const id = (await runCli(['id', '--key', c.key])).stdout.trim();
      assert.equal(payload.client.id, id);

      // Kept on disk, and the server's ledger agrees.
      assert.equal(j.receipt_file, path.join(c.receipts, `${j.delivery}.jws`));
      assert.equal(fs.readFileSync(j.receipt_file, 'utf8').trim(), j.receipt);
      const rows = srv.query(`SELECT status, client, path FROM deliveries WHERE id = '${j.delivery}'`);
      assert.deepEqual(rows, [{ status: 'confirmed', client: id, path: '/a.bin' }]);

      // receipt verify, with the key set by URL and from a file.
      const byUrl = await runCli(['verify', j.receipt_file, '--jwks', `${srv.url}/_receipt/jwks.json`]);
      assert.equal(byUrl.code, 0, byUrl.stderr);
      assert.deepEqual(JSON.parse(byUrl.stdout), payload);
      const jwksFile = c.out('jwks.json');
      fs.writeFileSync(jwksFile, JSON.stringify(jwks));
      const byFile = await runCli(['verify', j.receipt_file, '--jwks', jwksFile]);
      assert.equal(byFile.code, 0, byFile.stderr);
      // The --json output of fetch is a receipt file too.
      const jsonFile = c.out('fetch.json');
      fs.writeFileSync(jsonFile, r.stdout);
      assert.equal((await runCli(['verify', jsonFile, '--jwks', jwksFile])).code, 0);

      // A tampered receipt and a stranger's key set fail.
      const parts = j.receipt.split('.');
      const forged = JSON.parse(Buffer.from(parts[1], 'base64url'));
      forged.status = 'corrupted';
      const tampered = c.out('tampered.jws');
      fs.writeFileSync(tampered, [parts[0], Buffer.from(JSON.stringify(forged)).toString('base64url'), parts[2]].join('.'));
      const bad = await runCli(['verify', tampered, '--jwks', jwksFile]);
      assert.equal(bad.code, 1);
      assert.equal(bad.stdout, '');
      const other = await startServer({ files: { 'x': 'x' } });
      try {
        const stranger = await runCli(['verify', j.receipt_file, '--jwks', `${other.url}/_receipt/jwks.json`]);
        assert.equal(stranger.code, 1);
      } finally {
        await other.stop();
      }
    });

    test('the default output name, HTML, and standard output', async () => {
      const c = await clientDirs();
      const r = await runCli(['fetch', `${srv.url}/docs/t.txt?x=1`, '-o', c.dir, '--quiet', ...c.args()]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(path.join(c.dir, 't.txt'), 'utf8'), TEXT);

      const html = await runCli(['fetch', `${srv.url}/p.html`, '-o', c.out('p.html'), '--json', ...c.args()]);
      assert.equal(html.code, 0, html.stderr);
      assert.equal(parseJsonLine(html.stdout).status, 'confirmed');
      assert.equal(fs.readFileSync(c.out('p.html'), 'utf8'), '<html><body>x</body></html>');

      const piped = await runCli(['fetch', `${srv.url}/a.bin`, '-o', '-', '--quiet', ...c.args()]);
      assert.equal(piped.code, 0, piped.stderr);
      assert.deepEqual(piped.stdoutBytes, BIN);
    });

    test('a missing file or an unreachable server exits 1 and leaves nothing', async () => {
      const c = await clientDirs();
      const missing = await runCli(['fetch', `${srv.url}/nope.bin`, '-o', c.out('nope.bin'), '--json', ...c.args()]);
      assert.equal(missing.code, 1);
      const j = parseJsonLine(missing.stdout);
      assert.equal(j.status, 'failed');
      assert.match(j.error, /404/);
      const down = await runCli(['fetch', `http://127.0.0.1:${await freePort()}/a.bin`, '-o', c.out('a.bin'), ...c.args()]);
      assert.equal(down.code, 1);
      assert.deepEqual(fs.readdirSync(c.dir).filter((n) => n !== 'key.pem' && n !== 'spool' && n !== 'receipts'), []);
    });

    test('a server that is not a receipt server: exit 1, no file', async () => {
      const plain = http.createServer((req, res) => res.end('plain bytes'));
      const port = await freePort();
      await new Promise((r) => plain.listen(port, '127.0.0.1', r));
      try {
        const c = await clientDirs();
        const r = await runCli(['fetch', `http://127.0.0.1:${port}/x.bin`, '-o', c.out('x.bin'), ...c.args()]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /plug-in data/);
        assert.equal(fs.existsSync(c.out('x.bin')), false);
        assert.deepEqual(leftovers(c.dir), []);
      } finally {
        await new Promise((r) => plain.close(r));
      }
    });

    test('flush with an empty spool', async () => {
      const c = await clientDirs();
      const r = await runCli(['flush', '--json', ...c.args()]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
    });

    test('valgrind: fetch and confirm without memory errors or leaks', { skip: cliIsSanitized || !fs.existsSync('/usr/bin/valgrind') ? 'needs valgrind and a build without sanitizers' : false }, async () => {
      const c = await clientDirs();
      const r = await runCli(['fetch', `${srv.url}/a.bin`, '-o', c.out('a.bin'), '--json', ...c.args()], {
        wrap: ['valgrind', '--quiet', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect'],
        timeoutMs: 120000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(parseJsonLine(r.stdout).status, 'confirmed');
    });
  });

  test('confirm URL unreachable: exit 3, then flush confirms', async () => {
    const confirmPort = await freePort();
    const root = ownTempDir('receipt-root-');
    fs.writeFileSync(path.join(root, 'fw.bin'), BIN);
    const first = await startServer({ root, args: ['--public-url', `http://127.0.0.1:${confirmPort}`] });
    const stateDir = first.stateDir;
    const c = await clientDirs();
    let j;
    try {
      const r = await runCli(['fetch', `${first.url}/fw.bin`, '-o', c.out('fw.bin'), '--json', ...c.args()]);
      assert.equal(r.code, 3, r.stderr);
      j = parseJsonLine(r.stdout);
      assert.equal(j.status, 'spooled');
      assert.equal(j.receipt, null);
      assert.equal(j.sha256, sha256(BIN));
      // The content is saved: only its confirmation waits.
      assert.deepEqual(fs.readFileSync(c.out('fw.bin')), BIN);
      const spooled = fs.readdirSync(c.spool).filter((n) => n.endsWith('.json'));
      assert.equal(spooled.length, 1);
      assert.ok(spooled[0].endsWith(`-${j.delivery}.json`));
      assert.equal(fs.statSync(path.join(c.spool, spooled[0])).mode & 0o777, 0o600);
      const entry = JSON.parse(fs.readFileSync(path.join(c.spool, spooled[0]), 'utf8'));
      assert.equal(entry.delivery, j.delivery);
      assert.equal(entry.confirm, `http://127.0.0.1:${confirmPort}/_receipt/confirm`);
      assert.equal(entry.attempts, 1);
      assert.ok(entry.next_attempt_ms > Date.now() - 60000);

      // Still unreachable: flush keeps it and says so.
      const early = await runCli(['flush', '--json', ...c.args()]);
      assert.equal(early.code, 3, early.stderr);
      assert.equal(parseJsonLine(early.stdout).status, 'spooled');
    } finally {
      assert.equal((await first.stop()).code, 0, first.log());
    }

    // The same server (same keys and ledger) now at its public URL.
    const second = await startServer({ root, stateDir, port: confirmPort });
    try {
      const r = await runCli(['flush', '--json', ...c.args()]);
      assert.equal(r.code, 0, r.stderr);
      const f = parseJsonLine(r.stdout);
      assert.equal(f.delivery, j.delivery);
      assert.equal(f.status, 'confirmed');
      assert.equal(f.sha256, sha256(BIN));
      const jwks = await fetchJwks(second.url);
      const { payload } = await verifyReceipt(jwks, f.receipt);
      assert.equal(payload.delivery, j.delivery);
      assert.equal(payload.status, 'confirmed');
      assert.equal(fs.readFileSync(path.join(c.receipts, `${j.delivery}.jws`), 'utf8').trim(), f.receipt);
      assert.deepEqual(fs.readdirSync(c.spool).filter((n) => n.endsWith('.json')), []);
      const rows = second.query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`);
      assert.deepEqual(rows, [{ status: 'confirmed' }]);

      const verify = await runCli(['verify', path.join(c.receipts, `${j.delivery}.jws`), '--jwks', `${second.url}/_receipt/jwks.json`]);
      assert.equal(verify.code, 0, verify.stderr);
      // Nothing left: a second flush has nothing to do.
      const again = await runCli(['flush', '--json', ...c.args()]);
      assert.equal(again.code, 0);
      assert.equal(again.stdout, '');
    } finally {
      assert.equal((await second.stop()).code, 0, second.log());
    }
  });

  test('a plain-http confirm URL to a remote host is refused', async () => {
    const srv = await startServer({ files: { 'a.bin': BIN }, args: ['--public-url', 'http://receipt.example'] });
    try {
      const c = await clientDirs();
      const r = await runCli(['fetch', `${srv.url}/a.bin`, '-o', c.out('a.bin'), '--json', ...c.args()]);
      assert.equal(r.code, 1, r.stderr);
      const j = parseJsonLine(r.stdout);
      assert.equal(j.status, 'received');
      assert.match(j.error, /plain http/);
      assert.equal(fs.existsSync(c.spool) ? fs.readdirSync(c.spool).filter((n) => n.endsWith('.json')).length : 0, 0);
    } finally {
      await srv.stop();
    }
  });

  test('one byte flipped in transit: exit 4, confirmed as corrupted, no file', async () => {
    const srv = await startServer({ files: { 'a.bin': BIN } });
    const proxy = await flippingProxy(srv.port);
    try {
      const c = await clientDirs();
      const out = c.out('a.bin');
      const r = await runCli(['fetch', `${proxy.url}/a.bin`, '-o', out, '--json', ...c.args()]);
      assert.equal(r.code, 4, r.stderr);
      const j = parseJsonLine(r.stdout);
      assert.equal(j.status, 'corrupted');
      assert.equal(j.intact, false);
      assert.equal(j.path, null);
      assert.equal(j.size, BIN.length);
      const flipped = Buffer.from(BIN);
      flipped[100] ^= 0x01;
      assert.equal(j.sha256, sha256(flipped));
      assert.equal(j.content.sha256, sha256(BIN));
      assert.equal(fs.existsSync(out), false);
      assert.deepEqual(leftovers(c.dir), []);

      const { payload } = await verifyReceipt(await fetchJwks(srv.url), j.receipt);
      assert.equal(payload.status, 'corrupted');
      const rows = await srv.until(() => srv.query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`)[0]);
      assert.deepEqual(rows, { status: 'corrupted' });
    } finally {
      await proxy.close();
      await srv.stop();
    }
  });

  test('a 200 MB file streams in constant memory', { timeout: 300000 }, async (t) => {
    const root = tempDir('receipt-root-');
    const big = path.join(root, 'big.bin');
    const fd = fs.openSync(big, 'w');
    const block = crypto.randomBytes(1024 * 1024);
    for (let i = 0; i < BIG_SIZE / block.length; i++) {
      block[0] = i & 0xff; // no two blocks alike
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
    const srv = await startServer({ root });
    const c = await clientDirs();
    try {
      const out = c.out('big.bin');
      const r = await runCli(['fetch', `${srv.url}/big.bin`, '-o', out, '--json', ...c.args()], {
        watchMemory: true,
        timeoutMs: 240000,
      });
      assert.equal(r.code, 0, r.stderr);
      const j = parseJsonLine(r.stdout);
      assert.equal(j.status, 'confirmed');
      assert.equal(j.size, BIG_SIZE);
      assert.equal(fs.statSync(out).size, BIG_SIZE);
      assert.equal(j.sha256, await sha256File(big));
      assert.ok(r.peakKb > 0, 'memory was sampled');
      t.diagnostic(`peak RSS ${r.peakKb} kB`);
      // A sanitizer's shadow memory is not the program's own.
      const limit = cliIsSanitized ? 4 * RSS_LIMIT_KB : RSS_LIMIT_KB;
      assert.ok(r.peakKb < limit, `peak RSS ${r.peakKb} kB, limit ${limit} kB`);
    } finally {
      await srv.stop();
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });
});
