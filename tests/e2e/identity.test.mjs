// Receipts name their server (its ID, public URL and key set), so that
// `receipt verify` works from the receipt alone, and --jwks still wins (the
// way to verify offline); receiptd warns at start, and in --check, about a
// set-up on which browsers will not confirm.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CompactSign, exportJWK, generateKeyPair, calculateJwkThumbprint } from 'jose';
import { startServer, runReceiptd, freePort, tempDir, repoRoot } from './lib/server.mjs';
import { fetchJwks, verifyReceipt } from './lib/client.mjs';

const CLI = path.resolve(repoRoot, process.env.RECEIPT_CLI || 'build/receipt');
const BIN = crypto.randomBytes(4096);

function runCli(args) {
  return new Promise((resolve) => {
    const proc = spawn(CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A receipt signed by a key of our own, with the payload given. */
async function forged(payload) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'receipt+jwt' })
    .sign(privateKey);
}

describe('receipts name their server', () => {
  let srv;
  let dir;
  let receiptFile;
  let payload;
  before(async () => {
    srv = await startServer({ files: { 'a.bin': BIN } });
    dir = tempDir('receipt-identity-');
    const key = path.join(dir, 'key.pem');
    assert.equal((await runCli(['keygen', '--key', key, '--quiet'])).code, 0);
    const r = await runCli(['fetch', `${srv.url}/a.bin`, '-o', path.join(dir, 'a.bin'), '--json',
      '--key', key, '--spool', path.join(dir, 'spool'), '--receipts', path.join(dir, 'receipts')]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    receiptFile = j.receipt_file;
    ({ payload } = await verifyReceipt(await fetchJwks(srv.url), j.receipt));
  });
  after(async () => {
    if (srv) assert.equal((await srv.stop()).code, 0, srv.log());
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the payload names the public URL and the key set; the ID is the URL\'s host', () => {
    const { node, ...site } = payload.server;
    assert.deepEqual(site, { id: '127.0.0.1', url: srv.url, jwks: `${srv.url}/_receipt/jwks.json` });
    assert.equal(typeof node, 'string', 'and the node that signed it');
  });

  test('receipt verify without --jwks fetches the key set the receipt names', async () => {
    const r = await runCli(['verify', receiptFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), payload);
    assert.match(r.stderr, new RegExp(`valid receipt, signed with a key of ${srv.url}/_receipt/jwks.json`));
  });

  test('--jwks wins: another server\'s key set fails, a saved one verifies offline', async () => {
    const other = await startServer({ files: { x: 'x' } });
    try {
      const r = await runCli(['verify', receiptFile, '--jwks', `${other.url}/_receipt/jwks.json`]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
    } finally {
      await other.stop();
    }
    const saved = path.join(dir, 'jwks.json');
    fs.writeFileSync(saved, JSON.stringify(await fetchJwks(srv.url)));
    // With the server gone, only the saved set can verify.
    const down = await startServer({ files: { x: 'x' } });
    await down.stop();
    const tampered = path.join(dir, 'moved.jws');
    const [h, p, s] = fs.readFileSync(receiptFile, 'utf8').trim().split('.');
    const moved = JSON.parse(Buffer.from(p, 'base64url'));
    moved.server.url = down.url;
    moved.server.jwks = `${down.url}/_receipt/jwks.json`;
    fs.writeFileSync(tampered, [h, Buffer.from(JSON.stringify(moved)).toString('base64url'), s].join('.'));
    const unreachable = await runCli(['verify', tampered]);
    assert.equal(unreachable.code, 1);
    const offline = await runCli(['verify', receiptFile, '--jwks', saved]);
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stderr, /signed with a key of .*jwks\.json/);
    const forgedCopy = await runCli(['verify', tampered, '--jwks', saved]);
    assert.equal(forgedCopy.code, 1, 'the signature covers the server it names');
  });

  test('a receipt cannot send its reader anywhere: plain http off loopback, another origin, none', async () => {
    const base = { v: 1, delivery: '019a6b2c-3d4e-7f00-8000-0123456789ab', status: 'confirmed' };
    const cases = [
      [{ id: 'x', url: 'http://receipts.example', jwks: 'http://receipts.example/_receipt/jwks.json' },
        /plain http to a host that is not loopback/],
      [{ id: 'x', url: srv.url, jwks: 'https://keys.example/_receipt/jwks.json' },
        /is not on its server/],
      [{ id: 'x', url: 'https://a.example', jwks: 'https://a.example:8443/_receipt/jwks.json' },
        /is not on its server/],
      [{ id: 'x' }, /names no key set.*give --jwks/],
      [{ id: 'x', url: srv.url, jwks: 'file:///etc/passwd' }, /not an http\(s\) URL/],
    ];
    for (const [server, message] of cases) {
      const file = path.join(dir, 'forged.jws');
      fs.writeFileSync(file, await forged({ ...base, server }));
      const r = await runCli(['verify', file]);
      assert.equal(r.code, 1, JSON.stringify(server));
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
  });
});

describe('start-up warnings', () => {
  const root = tempDir('receipt-warn-root-');
  const state = () => path.join(tempDir('receipt-warn-state-'), 'state');

  test('a public listener without --public-url, and plain http off loopback', async () => {
    const port = await freePort();
    const srv = await startServer({
      root, stateDir: state(), logLevel: 'info', args: ['--listen', `0.0.0.0:${port}`],
      port,
    });
    try {
      const log = srv.log();
      assert.match(log, new RegExp(`warn +listening on 0\\.0\\.0\\.0:${port} without --public-url`));
      assert.match(log, /warn +the public URL http:\/\/\S+ is plain http on a host that is not loopback/);
      assert.equal(log.split('\n').filter((l) => / warn /.test(l)).length, 2, log);
    } finally {
      await srv.stop();
    }
  });

  test('--check says the same, and passes', async () => {
    const r = await runReceiptd(['--root', root, '--state-dir', state(), '--check',
      '--public-url', 'http://www.example.com']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warn +the public URL http:\/\/www\.example\.com is plain http/);
    assert.doesNotMatch(r.stderr, /without --public-url/);
    assert.match(r.stdout, /configuration is valid/);
  });

  test('none on loopback, nor behind an https public URL', async () => {
    for (const args of [[], ['--listen', '0.0.0.0:0', '--public-url', 'https://www.example.com']]) {
      const r = await runReceiptd(['--root', root, '--state-dir', state(), '--check', ...args]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /warn/, args.join(' '));
    }
  });
});
