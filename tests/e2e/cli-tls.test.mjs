// The receipt command against https servers whose certificates come from a
// private CA made at test time (nginx terminates TLS in front of receiptd):
// --cacert, --capath, CURL_CA_BUNDLE and SSL_CERT_FILE, and errors that say
// what failed (unknown issuer, host name, expiry) without blaming SSH.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, freePort, tempDir } from './lib/server.mjs';
import { runCli, clientDirs, removeOwnTempDirs, parseJsonLine } from './lib/cli.mjs';
import { makeCA } from './lib/tls.mjs';
import { startNginx, nginxMissing, tlsServerLines } from './lib/nginx.mjs';
import { fetchJwks, verifyReceipt } from './lib/client.mjs';

const BIN = crypto.randomBytes(32 * 1024);
const DAY = 24 * 3600 * 1000;
// Whatever CA variables the environment running the tests has set.
const NO_CA_ENV = { CURL_CA_BUNDLE: '', SSL_CERT_FILE: '', SSL_CERT_DIR: '' };

// An https front for receiptd on port, with the given certificate.
function frontServer(port, pair, upstreamPort) {
  return `
    server {
        listen 127.0.0.1:${port} ssl;
        ${tlsServerLines({ cert: pair.chain, key: pair.key })}
        location / {
            proxy_pass http://127.0.0.1:${upstreamPort};
            proxy_set_header Host $host:$server_port;
        }
    }`;
}

describe('receipt with a private CA', { skip: nginxMissing() || false }, () => {
  let ca, other, srv, nginx;
  let ports;

  before(async () => {
    ca = makeCA();
    // The server's chain goes through an intermediate: clients trust the root only.
    const sub = ca.intermediate();
    other = makeCA({ name: 'some other CA' });
    ports = { good: await freePort(), wrongName: await freePort(), expired: await freePort(), stranger: await freePort() };
    const goodUrl = `https://127.0.0.1:${ports.good}`;
    srv = await startServer({ files: { '/f.bin': BIN }, args: ['--public-url', goodUrl] });
    nginx = await startNginx({
      ports: Object.values(ports),
      servers: [
        frontServer(ports.good, sub.issue(), srv.port),
        frontServer(ports.wrongName, ca.issue({ names: ['files.example'] }), srv.port),
        frontServer(ports.expired, ca.issue({ notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) }), srv.port),
        frontServer(ports.stranger, other.issue(), srv.port),
      ].join('\n'),
    });
  });

  after(async () => {
    await nginx?.stop();
    await srv?.stop();
    removeOwnTempDirs();
  });

  async function fetchWith(port, args = [], env = {}) {
    const c = await clientDirs();
    const r = await runCli(['fetch', `https://127.0.0.1:${port}/f.bin`, '-o', c.out('f.bin'), '--json', ...c.args(), ...args],
      { env: { ...NO_CA_ENV, ...env } });
    return { c, r };
  }

  function assertConfirmed({ c, r }) {
    assert.equal(r.code, 0, r.stderr);
    const j = parseJsonLine(r.stdout);
    assert.equal(j.status, 'confirmed');
    assert.deepEqual(fs.readFileSync(c.out('f.bin')), BIN);
    return j;
  }

  // The words of a TLS failure: what failed, which CAs were trusted, no SSH.
  function assertTlsFailure({ r }, what) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /TLS: /);
    assert.match(r.stderr, what);
    assert.doesNotMatch(r.stderr, /SSH/i);
    assert.equal(parseJsonLine(r.stdout).status, 'failed');
  }

  test('--cacert: fetch and confirm through a chain to the named root', async () => {
    const j = assertConfirmed(await fetchWith(ports.good, ['--cacert', ca.cert]));
    const { payload } = await verifyReceipt(await fetchJwks(srv.url), j.receipt);
    assert.equal(payload.delivery, j.delivery);
    const rows = await srv.until(() => srv.query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`)[0]);
    assert.deepEqual(rows, { status: 'confirmed' });
  });

  test('without the CA: an unknown issuer, said as such, and how to name one', async () => {
    const f = await fetchWith(ports.good);
    assertTlsFailure(f, /certificate of 127\.0\.0\.1 was issued by an unknown authority/);
    assert.match(f.r.stderr, /--cacert FILE/);
  });

  test('a certificate from another CA than the one named', async () => {
    const f = await fetchWith(ports.stranger, ['--cacert', ca.cert]);
    assertTlsFailure(f, /unknown authority/);
    assert.match(f.r.stderr, new RegExp(`only the CAs in ${ca.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(--cacert\\)`));
  });

  test('a certificate for another host name', async () => {
    assertTlsFailure(await fetchWith(ports.wrongName, ['--cacert', ca.cert]), /not valid for the host name 127\.0\.0\.1/);
  });

  test('an expired certificate', async () => {
    assertTlsFailure(await fetchWith(ports.expired, ['--cacert', ca.cert]), /certificate of 127\.0\.0\.1 has expired/);
  });

  test('CURL_CA_BUNDLE, then SSL_CERT_FILE, are honoured; --cacert wins over both', async () => {
    assertConfirmed(await fetchWith(ports.good, [], { CURL_CA_BUNDLE: ca.cert }));
    assertConfirmed(await fetchWith(ports.good, [], { SSL_CERT_FILE: ca.cert }));
    // curl's order: CURL_CA_BUNDLE before SSL_CERT_FILE.
    assertTlsFailure(await fetchWith(ports.good, [], { CURL_CA_BUNDLE: other.cert, SSL_CERT_FILE: ca.cert }), /unknown authority/);
    assertConfirmed(await fetchWith(ports.good, ['--cacert', ca.cert], { CURL_CA_BUNDLE: other.cert, SSL_CERT_FILE: other.cert }));
  });

  test('--capath: a directory of hashed CA certificates', async () => {
    const dir = tempDir('receipt-capath-');
    try {
      fs.copyFileSync(ca.cert, path.join(dir, 'root.pem'));
      execFileSync('openssl', ['rehash', dir]);
      assertConfirmed(await fetchWith(ports.good, ['--capath', dir]));
      assertConfirmed(await fetchWith(ports.good, [], { SSL_CERT_DIR: dir }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a CA file that cannot be read is an error before any request', async () => {
    const missing = path.join(tempDir('receipt-noca-'), 'nope.pem');
    const f = await fetchWith(ports.good, ['--cacert', missing]);
    assert.equal(f.r.code, 1);
    assert.match(f.r.stderr, new RegExp(`CA file ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: No such file or directory \\(named by --cacert\\)`));
    const e = await fetchWith(ports.good, [], { SSL_CERT_FILE: missing });
    assert.equal(e.r.code, 1);
    assert.match(e.r.stderr, /named by SSL_CERT_FILE/);
    const notDir = await fetchWith(ports.good, ['--capath', ca.cert]);
    assert.match(notDir.r.stderr, /CA directory .*: Not a directory \(named by --capath\)/);
  });

  test('verify fetches the key set over https with --cacert', async () => {
    const { r } = await fetchWith(ports.good, ['--cacert', ca.cert]);
    const j = parseJsonLine(r.stdout);
    const file = path.join(tempDir('receipt-verify-'), 'r.json');
    fs.writeFileSync(file, r.stdout);
    const jwks = `https://127.0.0.1:${ports.good}/_receipt/jwks.json`;
    const ok = await runCli(['verify', file, '--jwks', jwks, '--cacert', ca.cert], { env: NO_CA_ENV });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).delivery, j.delivery);
    const refused = await runCli(['verify', file, '--jwks', jwks], { env: { ...NO_CA_ENV, SSL_CERT_FILE: other.cert } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /TLS: the certificate of 127\.0\.0\.1 was issued by an unknown authority/);
    assert.match(refused.stderr, /SSL_CERT_FILE/);
  });

  test('flush: a confirmation spooled behind an untrusted certificate goes once the CA is named', async () => {
    // receiptd names a confirm URL whose https front starts only later.
    const laterPort = await freePort();
    const s2 = await startServer({ files: { '/f.bin': BIN }, args: ['--public-url', `https://127.0.0.1:${laterPort}`] });
    let front2 = null;
    try {
      const c = await clientDirs();
      // Fetched over plain http on loopback; the confirm URL is https.
      const r = await runCli(['fetch', `${s2.url}/f.bin`, '-o', c.out('f.bin'), '--json', ...c.args(), '--cacert', ca.cert], { env: NO_CA_ENV });
      assert.equal(r.code, 3, r.stderr);
      const j = parseJsonLine(r.stdout);
      assert.equal(j.status, 'spooled');
      front2 = await startNginx({ ports: [laterPort], servers: frontServer(laterPort, ca.issue(), s2.port) });

      const untrusted = await runCli(['flush', '--json', ...c.args()], { env: { ...NO_CA_ENV, SSL_CERT_FILE: other.cert } });
      assert.equal(untrusted.code, 3, untrusted.stderr);
      const u = parseJsonLine(untrusted.stdout);
      assert.equal(u.status, 'spooled');
      assert.match(u.error, /TLS: the certificate of 127\.0\.0\.1 was issued by an unknown authority/);

      const flushed = await runCli(['flush', '--json', ...c.args(), '--cacert', ca.cert], { env: NO_CA_ENV });
      assert.equal(flushed.code, 0, flushed.stderr);
      assert.equal(parseJsonLine(flushed.stdout).status, 'confirmed');
      const row = await s2.until(() => s2.query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`)[0]);
      assert.deepEqual(row, { status: 'confirmed' });
    } finally {
      await front2?.stop();
      await s2.stop();
    }
  });
});
