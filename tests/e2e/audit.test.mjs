// Checks of shipped behaviour against the issues' wording, each one a case
// that once went wrong: messages, exit statuses and answers a user sees.
// Quick on purpose: no server unless a case needs one.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runCli, ownTempDir, removeOwnTempDirs, clientDirs } from './lib/cli.mjs';
import { spawn, spawnSync } from 'node:child_process';
import { runReceiptd, startServer, RECEIPTD, ledgerArgs } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';

describe('receipt verify --bundle on what is no bundle', () => {
  after(() => removeOwnTempDirs());

  test('a file that is not JSON is said to be so, without naming an empty delivery', async () => {
    const dir = ownTempDir('receipt-audit-');
    const file = path.join(dir, 'bundle.json');
    fs.writeFileSync(file, '{"v":1,');
    const r = await runCli(['verify', '--bundle', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /bundle\.json: the bundle: it is not JSON/);
    assert.doesNotMatch(r.stderr, /the bundle of :/);
  });

  test('a bundle without its delivery says what it lacks', async () => {
    const dir = ownTempDir('receipt-audit-');
    const file = path.join(dir, 'bundle.json');
    fs.writeFileSync(file, JSON.stringify({ v: 1, origin: 'x/_receipt/log', events: [] }));
    const r = await runCli(['verify', '--bundle', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the bundle: it lacks a member/);
  });
});

describe('receiptd --config and secrets', () => {
  after(() => removeOwnTempDirs());

  test('a libpq password written with spaces around its = is a password too', async () => {
    const dir = ownTempDir('receipt-audit-');
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const cases = [
      'host=db.example user=receipt password = s3cret dbname=receipt',
      'host=db.example password\t=s3cret',
      "host=db.example password= 's3 cret'",
    ];
    for (const ledger of cases) {
      const conf = path.join(dir, 'receiptd.conf');
      fs.writeFileSync(conf, `root ${root}\nledger ${ledger}\n`);
      fs.chmodSync(conf, 0o644);
      const r = await runReceiptd(['--config', conf, '--check']);
      assert.equal(r.code, 2, `${ledger}: ${r.stderr}`);
      assert.match(r.stderr, /:2: ledger holds a password, and others may read the file \(mode 0644\)/, ledger);
      assert.doesNotMatch(r.stderr, /s3/);
    }
    // Without a password the same file is read (and fails later, on the state directory).
    const conf = path.join(dir, 'receiptd.conf');
    fs.writeFileSync(conf, `root ${root}\nledger host=db.example passfile=/etc/receiptd/pgpass\n`);
    fs.chmodSync(conf, 0o644);
    const r = await runReceiptd(['--config', conf, '--check', '--state-dir', path.join(dir, 'none')]);
    assert.doesNotMatch(r.stderr, /holds a password/);
  });
});

describe('receiptd --config: paths that name nothing', () => {
  after(() => removeOwnTempDirs());

  test('a root or certificate file that does not exist is an error that names the file and line', async () => {
    const dir = ownTempDir('receipt-audit-');
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const conf = path.join(dir, 'receiptd.conf');
    fs.writeFileSync(conf, `# a site\nroot ${path.join(dir, 'no-such-root')}\n`);
    let r = await runReceiptd(['--config', conf, '--check', '--state-dir', path.join(dir, 'state')]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.startsWith(`receiptd: ${conf}:2: root ${path.join(dir, 'no-such-root')}: No such file or directory`), r.stderr);
    // The command line replaces the file's value, and with it the error.
    r = await runReceiptd(['--config', conf, '--root', root, '--check', '--state-dir', path.join(dir, 'state')]);
    assert.doesNotMatch(r.stderr, /no-such-root/);

    fs.writeFileSync(conf, `root ${root}\ntls-cert ${path.join(dir, 'cert.pem')}\ntls-key ${path.join(dir, 'key.pem')}\n`);
    r = await runReceiptd(['--config', conf, '--check', '--state-dir', path.join(dir, 'state')]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.startsWith(`receiptd: ${conf}:2: tls-cert ${path.join(dir, 'cert.pem')}: No such file or directory`), r.stderr);
    assert.equal(fs.existsSync(path.join(dir, 'state')), false, 'nothing was made');
  });
});

describe('receipt fetch of a path the server does not track', () => {
  after(() => removeOwnTempDirs());

  test('says the path is not tracked, not only that the server may be no receipt server; saves nothing', async () => {
    const srv = await startServer({ files: { '/kept.bin': 'bytes', '/free.bin': 'free' }, args: ['--untrack', '/free.bin', '--admin-listen', 'off'] });
    try {
      const c = await clientDirs();
      const out = c.out('free.bin');
      const r = await runCli(['fetch', `${srv.url}/free.bin`, '-o', out, ...c.args()]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /free\.bin: the answer carries no plug-in data and no ticket: the server does not track this path/);
      assert.equal(fs.existsSync(out), false);
    } finally {
      await srv.stop();
    }
  });
});

describe('receiptd ledger verify: leaves that no checkpoint signs', () => {
  test('the newest checkpoint deleted behind the server is found (the server could not write its next batch)', async () => {
    const srv = await startServer({ files: { '/a.html': '<p>a</p>' }, args: ['--admin-listen', 'off'] });
    for (let i = 0; i < 3; i++) await fetch(`${srv.url}/a.html`).then((r) => r.text());
    await srv.until(() => srv.query('SELECT count(*) AS n FROM log_entries')[0].n >= 4);
    assert.equal((await srv.stop()).code, 0);
    const verify = () => spawnSync(RECEIPTD, ['ledger', 'verify', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir)], { encoding: 'utf8', timeout: 30000 });
    let r = verify();
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const newest = Number(srv.query('SELECT max(size) AS n FROM log_checkpoints')[0].n);
    const leaves = Number(srv.query('SELECT count(*) AS n FROM log_entries')[0].n);
    assert.equal(newest, leaves, 'every leaf is signed');
    srv.exec(`DELETE FROM log_checkpoints WHERE size = ${newest}`);
    const before = Number(srv.query('SELECT max(size) AS n FROM log_checkpoints')[0].n);
    r = verify();
    assert.equal(r.status, 5, r.stderr + r.stdout);
    assert.match(r.stderr, new RegExp(`(leaf|leaves) ${before}( to ${leaves - 1})? (is|are) in no checkpoint \\(the newest signs ${before} leaves\\)`));
    // The server refuses to start on it, instead of failing every batch.
    const started = await runReceiptd(['--root', srv.root, '--listen', '127.0.0.1:0', '--admin-listen', 'off', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir)]);
    assert.notEqual(started.code, 0, started.stderr);
    assert.match(started.stderr, new RegExp(`the log is damaged: leaf ${before} is stored, but its newest checkpoint signs ${before} leaves`));
    assert.equal(Number(srv.query('SELECT count(*) AS n FROM log_entries')[0].n), leaves, 'nothing written');
  });
});

describe('receiptd ledger verify on a running server', () => {
  test('reads while deliveries are made: no problem is told that a second read clears', { timeout: 120000 }, async () => {
    const srv = await startServer({ files: { '/a.html': '<p>a</p>' }, args: ['--admin-listen', 'off'] });
    let stop = false;
    const load = async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        await fetch(`${srv.url}/a.html`, { signal: AbortSignal.timeout(5000) }).then((r) => r.arrayBuffer()).catch(() => {});
      }
    };
    const verifyOnce = () => new Promise((resolve) => {
      const p = spawn(RECEIPTD, ['ledger', 'verify', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir)]);
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, err });
      });
    });
    const loaders = Array.from({ length: 8 }, load);
    const told = [];
    try {
      await srv.until(() => srv.query('SELECT count(*) AS n FROM deliveries')[0].n >= 100);
      // Up to 15 reads, within 30 s: a slow build (sanitizers) on a busy
      // machine gets fewer, each of them still racing the writer.
      const until = Date.now() + 30000;
      for (let i = 0; i < 15 && (i < 3 || Date.now() < until); i++) {
        const r = await verifyOnce();
        if (r.code !== 0) told.push(r.err);
      }
    } finally {
      stop = true;
      await Promise.all(loaders);
    }
    assert.deepEqual(told, [], 'a live ledger verifies');
    assert.equal((await srv.stop()).code, 0);
  });
});

describe('a Content-Length that is no number', () => {
  test('gets libmicrohttpd\'s own 400 (status line and header fields twice), the connection closed, nothing recorded', { timeout: 30000 }, async () => {
    const srv = await startServer({ files: { '/a.txt': 'hello' }, args: ['--admin-listen', 'off'] });
    try {
      const text = await new Promise((resolve, reject) => {
        const sock = net.connect(srv.port, '127.0.0.1', () => sock.end('GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'));
        let got = '';
        sock.on('data', (d) => (got += d));
        sock.on('close', () => resolve(got));
        sock.on('error', reject);
        sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
      });
      const lines = text.split('\r\n').filter((l) => /^HTTP\/1\.1 \d{3} /.test(l));
      assert.deepEqual(lines, ['HTTP/1.1 400 Bad Request', 'HTTP/1.1 400 Bad Request'], text);
      assert.match(text, /Content-Length/);
      assert.equal(Number(srv.query('SELECT count(*) AS n FROM deliveries')[0].n), 0);
    } finally {
      await srv.stop();
    }
  });
});

describe('receiptd --check: what the start would refuse', () => {
  after(() => removeOwnTempDirs());

  test('an access log that cannot be opened and a temp-dir that takes no file fail the check', async () => {
    const dir = ownTempDir('receipt-audit-');
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const state = path.join(dir, 'state');
    let r = await runReceiptd(['--root', root, '--state-dir', state, '--access-log', path.join(dir, 'no-dir', 'access.log'), '--check']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /cannot open access log .*no-dir\/access\.log: No such file or directory/);
    assert.doesNotMatch(r.stdout, /configuration is valid/);
    r = await runReceiptd(['--root', root, '--state-dir', state, '--access-log', path.join(dir, 'access.log'), '--check']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /configuration is valid/);
    // An upstream's spill files go to --temp-dir: one that is no directory fails.
    const notDir = path.join(dir, 'file');
    fs.writeFileSync(notDir, '');
    r = await runReceiptd(['--root', root, '--state-dir', state, '--upstream', 'http://127.0.0.1:9', '--temp-dir', notDir, '--check']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /--temp-dir .*file takes no temporary file/);
  });
});

describe('a certificate that expires within two days', () => {
  after(() => removeOwnTempDirs());

  test('is logged in hours, not as "0 days"', async () => {
    const ca = makeCA();
    const pair = ca.issue({ notBefore: new Date(Date.now() - 3600 * 1000), notAfter: new Date(Date.now() + 30 * 3600 * 1000) });
    const srv = await startServer({ files: { '/a.html': '<p>a</p>' }, https: true, logLevel: 'info', args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--admin-listen', 'off'] });
    try {
      await srv.until(() => /expires in/.test(srv.log()));
      assert.match(srv.log(), /public listener: the certificate in .* expires in (29|30) hours, on /);
    } finally {
      await srv.stop();
    }
  });
});

describe('receiptd --check-config: the check before a reload', () => {
  after(() => removeOwnTempDirs());

  test('leaves out the ledger integrity check that --check runs, and still checks the rest', async () => {
    // SQLite's integrity check is the one that reads the whole ledger; the
    // index is made to disagree with its table as a damaged page would.
    const srv = await startServer({ files: { '/a.html': '<p>a</p>' }, ledger: 'sqlite', args: ['--admin-listen', 'off'] });
    const base = ['--root', srv.root, '--state-dir', srv.stateDir, '--admin-listen', 'off'];
    try {
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${srv.url}/a.html`, { headers: { 'Sec-Fetch-Dest': 'document', 'Sec-Fetch-Mode': 'navigate' } });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await srv.until(() => Number(srv.query('SELECT count(*) AS n FROM deliveries')[0].n) === 20);
    } finally {
      await srv.stop();
    }
    let r = await runReceiptd([...base, '--check-config']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /ledger sqlite opens \(its integrity is checked by --check\)/);
    srv.exec("PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = replace(sql, '(issued_ms)', '(issued_ms DESC)') WHERE name = 'deliveries_issued';");
    r = await runReceiptd([...base, '--check']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /integrity check failed/);
    r = await runReceiptd([...base, '--check-config']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /configuration is valid/);
    // What start-up refuses, --check-config refuses too.
    r = await runReceiptd([...base, '--tls-cert', path.join(srv.root, 'a.html'), '--tls-key', path.join(srv.root, 'a.html'), '--check-config']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.doesNotMatch(r.stdout, /configuration is valid/);
  });
});
