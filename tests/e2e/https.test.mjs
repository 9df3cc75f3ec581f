// receiptd terminating TLS with a certificate from a CA made at test time:
// curl, the receipt command and headless Chromium fetch and confirm over
// https; old protocol versions and weak ciphers are refused; SIGHUP swaps
// the certificate for new connections while a download that started
// before it completes; a pair that fails to load leaves the old one in
// place; --redirect-http answers 308; the admin listener has its own pair.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { startServer, runReceiptd, freePort, tempDir } from './lib/server.mjs';
import { runCli, clientDirs, removeOwnTempDirs, parseJsonLine } from './lib/cli.mjs';
import { makeCA, installPair, serialHex } from './lib/tls.mjs';
import { launch, newContext, watch } from './lib/browser.mjs';

const BIG = 48 * 1024 * 1024;
const PAGE = '<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body><h1>Terms</h1></body></html>';
const NO_CA_ENV = { CURL_CA_BUNDLE: '', SSL_CERT_FILE: '', SSL_CERT_DIR: '' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** Connects with TLS and resolves with {serial, protocol, cipher}, or rejects. */
function handshake(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: undefined, ...opts }, () => {
      const cert = sock.getPeerCertificate();
      const out = { serial: cert.serialNumber, protocol: sock.getProtocol(), cipher: sock.getCipher().name, authorized: sock.authorized };
      sock.end();
      resolve(out);
    });
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
    sock.on('error', reject);
  });
}

/** A GET over https; resolves with {status, headers, body, socket}. */
function get(url, { ca, agent = false, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function untilLog(srv, re, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!re.test(srv.log())) {
    if (Date.now() > deadline) throw new Error(`log never matched ${re}:\n${srv.log()}`);
    await sleep(20);
  }
}

describe('receiptd over https', () => {
  let ca, ca2, dir, certFile, keyFile, srv, first, redirectPort, bigData;

  before(async () => {
    ca = makeCA();
    ca2 = makeCA({ name: 'receipt test admin CA' });
    dir = tempDir('receipt-https-');
    certFile = path.join(dir, 'cert.pem');
    keyFile = path.join(dir, 'key.pem');
    // The chain goes through an intermediate; clients know the root only.
    first = ca.intermediate().issue();
    installPair(first, certFile, keyFile);
    const admin = ca2.issue();
    bigData = crypto.randomBytes(BIG);
    redirectPort = await freePort();
    srv = await startServer({
      https: true,
      adminHttps: true,
      files: { '/a.html': PAGE, '/doc.bin': crypto.randomBytes(40000), '/big.bin': bigData },
      args: ['--tls-cert', certFile, '--tls-key', keyFile, '--redirect-http', `127.0.0.1:${redirectPort}`,
        '--admin-tls-cert', admin.chain, '--admin-tls-key', admin.key, '--log-level', 'info'],
    });
  });

  after(async () => {
    await srv?.stop();
    removeOwnTempDirs();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the public URL is https, and curl fetches a delivery trusting the test CA', () => {
    assert.match(srv.log(), /public URL https:\/\/127\.0\.0\.1:\d+; confirmations go to https:/);
    const out = execFileSync('curl', ['-sS', '-D', '-', '-o', '/dev/null', '--cacert', ca.cert, `${srv.url}/doc.bin`], { encoding: 'utf8', env: { ...process.env, ...NO_CA_ENV } });
    assert.match(out, /^HTTP\/1\.1 200/);
    assert.match(out, /\r\nreceipt-delivery: [0-9a-f-]{36}\r\n/i);
    // Without the CA, curl refuses the server: nothing about the server is trusted by default.
    const r = spawnSync('curl', ['-sS', '-o', '/dev/null', `${srv.url}/doc.bin`], { encoding: 'utf8', env: { ...process.env, ...NO_CA_ENV } });
    assert.notEqual(r.status, 0);
  });

  test('the receipt command fetches and confirms with --cacert', async () => {
    const c = await clientDirs();
    const r = await runCli(['fetch', `${srv.url}/doc.bin`, '-o', c.out('doc.bin'), '--json', '--cacert', ca.cert, ...c.args()], { env: NO_CA_ENV });
    assert.equal(r.code, 0, r.stderr);
    const j = parseJsonLine(r.stdout);
    assert.equal(j.status, 'confirmed');
    const row = await srv.until(() => srv.query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`)[0]);
    assert.deepEqual(row, { status: 'confirmed' });
  });

  test('headless Chromium loads a page over https and its agent confirms', { timeout: 90000 }, async () => {
    // The test CA in the browser's certificate store, as a company's CA
    // would be: the page is a secure context, with no certificate error.
    const browser = await launch({ trustCA: ca.cert });
    try {
      const ctx = await newContext(browser);
      const pg = await ctx.newPage();
      const w = watch(pg);
      const res = await pg.goto(`${srv.url}/a.html`);
      assert.equal(res.status(), 200);
      assert.equal(await pg.evaluate(() => window.isSecureContext), true);
      const id = res.headers()['receipt-delivery'];
      const row = await srv.until(() => srv.query(`SELECT status FROM deliveries WHERE id = '${id}' AND status = 'confirmed'`)[0], 15000);
      assert.deepEqual(row, { status: 'confirmed' }, srv.log());
      assert.deepEqual(w.errors, []);
      assert.deepEqual(w.unexpected(), []);
    } finally {
      await browser.close();
    }
  });

  test('TLS 1.2 and 1.3 with AEAD ciphers only: TLS 1.0, 1.1 and CBC are refused', async () => {
    const v13 = await handshake(srv.port, { ca: ca.cert && fs.readFileSync(ca.cert), minVersion: 'TLSv1.3' });
    assert.equal(v13.protocol, 'TLSv1.3');
    assert.equal(v13.authorized, true);
    const v12 = await handshake(srv.port, { ca: fs.readFileSync(ca.cert), maxVersion: 'TLSv1.2' });
    assert.equal(v12.protocol, 'TLSv1.2');
    assert.match(v12.cipher, /^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    // A client that would settle for the old versions (its own security
    // level lowered so that it offers them at all) gets no handshake.
    for (const version of ['TLSv1', 'TLSv1.1']) {
      await assert.rejects(handshake(srv.port, { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false }),
        (e) => e.message !== 'timeout', version);
    }
    await assert.rejects(handshake(srv.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA', rejectUnauthorized: false }));
  });

  test('SIGHUP: new connections get the new certificate; a download under way completes', { timeout: 60000 }, async () => {
    // A download that starts now and reads slowly: it is still going when the pair changes.
    const started = await new Promise((resolve, reject) => {
      const req = https.get(`${srv.url}/big.bin`, { ca: fs.readFileSync(ca.cert), agent: false }, (res) => {
        res.pause();
        resolve({ res, serial: res.socket.getPeerCertificate().serialNumber });
      });
      req.on('error', reject);
    });
    assert.equal(started.serial, serialHex(first.serial));

    const second = ca.intermediate().issue();
    installPair(second, certFile, keyFile);
    srv.proc.kill('SIGHUP');
    await untilLog(srv, new RegExp(`public listener: reloaded certificate CN=127\\.0\\.0\\.1 \\(serial ${serialHex(second.serial)},`));
    const now = await handshake(srv.port, { ca: fs.readFileSync(ca.cert) });
    assert.equal(now.serial, serialHex(second.serial));
    assert.equal(now.authorized, true);

    // The old download goes on, on its old session, to the last byte.
    const hash = crypto.createHash('sha256');
    let got = 0;
    await new Promise((resolve, reject) => {
      started.res.on('data', (d) => {
        hash.update(d);
        got += d.length;
      });
      started.res.on('end', resolve);
      started.res.on('error', reject);
      started.res.resume();
    });
    assert.equal(got, BIG);
    assert.equal(hash.digest('hex'), sha256(bigData));

    // A pair that does not load is logged, and the one in use stays.
    const third = ca.issue();
    fs.copyFileSync(third.chain, certFile); // the key still belongs to the second
    srv.proc.kill('SIGHUP');
    await untilLog(srv, new RegExp(`SIGHUP: public listener: key file ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not hold the private key of the first certificate in .*; the certificate in use \\(serial ${serialHex(second.serial)}\\) stays`));
    assert.equal((await handshake(srv.port, { ca: fs.readFileSync(ca.cert) })).serial, serialHex(second.serial));
    // Still serving.
    assert.equal((await get(`${srv.url}/doc.bin`, { ca: fs.readFileSync(ca.cert) })).status, 200);
    installPair(second, certFile, keyFile);
  });

  test('SIGHUP: a certificate that has expired or is not valid yet does not replace a valid one', async () => {
    const trust = fs.readFileSync(ca.cert);
    const inUse = (await handshake(srv.port, { ca: trust })).serial;
    const DAY = 24 * 3600 * 1000;
    // A backup restored by mistake, and a certificate dated in the future.
    const expired = ca.issue({ notBefore: new Date(Date.now() - 60 * DAY), notAfter: new Date(Date.now() - DAY) });
    const early = ca.issue({ notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 60 * DAY) });
    for (const [pair, why] of [[expired, 'expired on'], [early, 'is not valid until']]) {
      installPair(pair, certFile, keyFile);
      srv.proc.kill('SIGHUP');
      await untilLog(srv, new RegExp(`SIGHUP: public listener: certificate file .* \\(serial ${serialHex(pair.serial)}\\) ${why} \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(valid from [^)]* until [^)]*\\); the certificate in use \\(serial ${inUse}\\) stays`));
      const now = await handshake(srv.port, { ca: trust });
      assert.equal(now.serial, inUse);
      assert.equal(now.authorized, true);
    }
    // A valid pair is taken again.
    const fresh = ca.issue();
    installPair(fresh, certFile, keyFile);
    srv.proc.kill('SIGHUP');
    await untilLog(srv, new RegExp(`public listener: reloaded certificate CN=127\\.0\\.0\\.1 \\(serial ${serialHex(fresh.serial)},`));
    assert.equal((await handshake(srv.port, { ca: trust })).serial, serialHex(fresh.serial));
  });

  test('--redirect-http answers 308 to the https URL, path and query kept', async () => {
    const delivered = () => Number(srv.query("SELECT count(*) AS n FROM deliveries WHERE path = '/a.html'")[0].n);
    const before = delivered();
    const res = await new Promise((resolve, reject) => {
      http.get(`http://127.0.0.1:${redirectPort}/a.html?x=1&y=%20`, resolve).on('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `${srv.url}/a.html?x=1&y=%20`);
    const post = await new Promise((resolve, reject) => {
      const req = http.request(`http://127.0.0.1:${redirectPort}/_receipt/confirm`, { method: 'POST' }, resolve);
      req.on('error', reject);
      req.end('x');
    });
    post.resume();
    assert.equal(post.statusCode, 308);
    assert.equal(post.headers.location, `${srv.url}/_receipt/confirm`);
    // Without Host, HTTP/1.1 is refused as on the public listener; HTTP/1.0 needs none.
    const raw = (request) => new Promise((resolve, reject) => {
      const sock = net.connect(redirectPort, '127.0.0.1', () => sock.end(request));
      let got = '';
      sock.on('data', (d) => (got += d));
      sock.on('end', () => resolve(got));
      sock.on('error', reject);
    });
    const noHost = await raw('GET /a.html HTTP/1.1\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 400 /);
    assert.equal(JSON.parse(noHost.slice(noHost.indexOf('\r\n\r\n') + 4)).error, 'bad_host');
    assert.match(await raw('GET /a.html HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw('GET /a.html HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 308 /);
    // Nothing was delivered through it.
    assert.equal(delivered(), before);
  });

  test('the admin listener serves its own certificate', async () => {
    const res = await get(`${srv.adminUrl}/metrics`, { ca: fs.readFileSync(ca2.cert), headers: { Authorization: `Bearer ${srv.adminToken()}` } });
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /receiptd_deliveries_total/);
    // Not the public pair: the public CA does not vouch for it.
    await assert.rejects(get(`${srv.adminUrl}/metrics`, { ca: fs.readFileSync(ca.cert) }), /certificate/);
  });
});

describe('a TLS handshake is part of the time to send headers', () => {
  test('a client that starts a handshake and stalls is closed after --header-timeout', { timeout: 30000 }, async () => {
    const ca = makeCA();
    const pair = ca.issue();
    const srv = await startServer({ https: true, files: { '/a.txt': 'x' },
      args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--header-timeout', '1', '--idle-timeout', '30'] });
    try {
      const closedAfter = await new Promise((resolve, reject) => {
        const t0 = Date.now();
        const sock = net.connect(srv.port, '127.0.0.1', () => {
          // The first bytes of a ClientHello record, and then nothing.
          sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        });
        const timer = setTimeout(() => reject(new Error('still open after 10 s')), 10000);
        sock.on('close', () => {
          clearTimeout(timer);
          resolve(Date.now() - t0);
        });
        sock.on('error', () => {});
      });
      assert.ok(closedAfter >= 900 && closedAfter < 5000, `closed after ${closedAfter} ms`);
      const text = await (await fetch(`${srv.adminUrl}/metrics`)).text();
      assert.match(text, /receiptd_http_connections_closed_total\{listener="public",reason="slow_headers"\} [1-9]/);
      // A client that completes its handshake and asks in time is served.
      const ok = await get(`${srv.url}/a.txt`, { ca: fs.readFileSync(ca.cert) });
      assert.equal(ok.status, 200);
    } finally {
      await srv.stop();
    }
  });
});

describe('SIGHUP with a certificate or key path that is not a file', () => {
  test('a FIFO in place of either file is refused at once, and the server still reloads and stops', { timeout: 30000 }, async () => {
    const ca = makeCA();
    const dir = tempDir('receipt-fifo-');
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    const first = ca.issue();
    installPair(first, certFile, keyFile);
    const srv = await startServer({ https: true, files: { '/a.txt': 'x' },
      args: ['--tls-cert', certFile, '--tls-key', keyFile, '--admin-listen', 'off', '--log-level', 'info'] });
    try {
      // Opening a FIFO for reading waits for a writer: the reload must not.
      for (const file of [certFile, keyFile]) {
        const saved = fs.readFileSync(file);
        fs.rmSync(file);
        execFileSync('mkfifo', ['-m', '0600', file]);
        srv.proc.kill('SIGHUP');
        await untilLog(srv, new RegExp(`SIGHUP: public listener: (certificate|key) file: not a regular file: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*; the certificate in use \\(serial ${serialHex(first.serial)}\\) stays`));
        fs.rmSync(file);
        fs.writeFileSync(file, saved, { mode: 0o600 });
      }
      const second = ca.issue();
      installPair(second, certFile, keyFile);
      srv.proc.kill('SIGHUP');
      await untilLog(srv, new RegExp(`reloaded certificate CN=127\\.0\\.0\\.1 \\(serial ${serialHex(second.serial)},`));
      assert.equal((await handshake(srv.port, { ca: fs.readFileSync(ca.cert) })).serial, serialHex(second.serial));
      srv.proc.kill('SIGTERM');
      const code = await new Promise((resolve) => {
        if (srv.proc.exitCode !== null) resolve(srv.proc.exitCode);
        srv.proc.once('exit', (c) => resolve(c));
      });
      assert.equal(code, 0);
    } finally {
      await srv.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('receiptd refuses a TLS set-up that cannot be right', () => {
  test('a key file others may read, a key of another certificate, a missing file', async () => {
    const ca = makeCA();
    const a = ca.issue();
    const b = ca.issue();
    const root = tempDir('receipt-root-');
    const state = path.join(tempDir('receipt-state-'), 'state');
    const base = ['--root', root, '--state-dir', state, '--listen', '127.0.0.1:0', '--admin-listen', 'off'];
    fs.chmodSync(a.key, 0o644);
    let r = await runReceiptd([...base, '--tls-cert', a.chain, '--tls-key', a.key]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tls-cert: key file .* has mode 0644: others may read or change it/);
    fs.chmodSync(a.key, 0o600);
    r = await runReceiptd([...base, '--tls-cert', a.chain, '--tls-key', b.key]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not hold the private key of the first certificate/);
    r = await runReceiptd([...base, '--tls-cert', path.join(root, 'none.pem'), '--tls-key', a.key]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tls-cert: certificate file: cannot open .*none\.pem: No such file or directory/);
    r = await runReceiptd([...base, '--tls-cert', a.chain]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--tls-cert and --tls-key go together/);
    // --check loads the pair too.
    r = await runReceiptd([...base, '--tls-cert', a.chain, '--tls-key', a.key, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`public certificate CN=127\\.0\\.0\\.1, serial ${serialHex(a.serial)}`));
    r = await runReceiptd([...base, '--tls-cert', a.chain, '--tls-key', b.key, '--check']);
    assert.equal(r.code, 1);
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('a certificate that has expired or is not valid yet: --check-config and the start refuse it, naming its dates', async () => {
    const ca = makeCA();
    const DAY = 24 * 3600 * 1000;
    const t0 = Date.now();
    const root = tempDir('receipt-root-');
    const state = path.join(tempDir('receipt-state-'), 'state');
    const base = ['--root', root, '--state-dir', state, '--listen', '127.0.0.1:0'];
    const day = (d) => d.toISOString().slice(0, 10);
    const expired = ca.issue({ notBefore: new Date(t0 - 60 * DAY), notAfter: new Date(t0 - DAY) });
    const early = ca.issue({ notBefore: new Date(t0 + DAY), notAfter: new Date(t0 + 60 * DAY) });
    const cases = [
      [expired, 'expired on', t0 - DAY, t0 - 60 * DAY, t0 - DAY],
      [early, 'is not valid until', t0 + DAY, t0 + DAY, t0 + 60 * DAY],
    ];
    for (const [pair, why, when, from, until] of cases) {
      const message = new RegExp(`--(admin-)?tls-cert: certificate file ${pair.chain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ` +
        `its certificate \\(serial ${serialHex(pair.serial)}\\) ${why} ${day(new Date(when))} \\d\\d:\\d\\d:\\d\\d UTC ` +
        `\\(valid from ${day(new Date(from))} \\d\\d:\\d\\d:\\d\\d UTC until ${day(new Date(until))} \\d\\d:\\d\\d:\\d\\d UTC\\)`);
      for (const listener of [['--admin-listen', 'off', '--tls-cert', pair.chain, '--tls-key', pair.key],
        ['--admin-listen', '127.0.0.1:0', '--admin-tls-cert', pair.chain, '--admin-tls-key', pair.key]]) {
        // The check before a reload refuses what the start refuses ...
        let r = await runReceiptd([...base, ...listener, '--check-config']);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stdout, /configuration is valid/);
        // ... and the start stops at once instead of serving a certificate every client rejects.
        r = await runReceiptd([...base, ...listener]);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, /listening|serving/);
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('a certificate file without its intermediates is served with a warning that names its issuer', async () => {
    const ca = makeCA();
    const pair = ca.intermediate().issue();
    const root = tempDir('receipt-root-');
    const state = path.join(tempDir('receipt-state-'), 'state');
    const base = ['--root', root, '--state-dir', state, '--listen', '127.0.0.1:0', '--admin-listen', 'off', '--check-config'];
    // certbot's cert.pem where fullchain.pem belongs.
    let r = await runReceiptd([...base, '--tls-cert', pair.cert, '--tls-key', pair.key]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warn  public listener: \S+ holds no certificate of the chain after the server's: clients that do not trust its issuer \(CN=receipt test intermediate CA\) directly will refuse it/);
    r = await runReceiptd([...base, '--tls-cert', pair.chain, '--tls-key', pair.key]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /holds no certificate of the chain/);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
