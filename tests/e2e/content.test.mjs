// receiptd as a static server that records deliveries (docs/protocol.md section 5).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import {
  startServer, runReceiptd, rawRequest, statusOf, tempDir, freePort, writeFiles, RECEIPTD,
} from './lib/server.mjs';

const PAGE = '<!doctype html><html><head><title>t</title></head><body><p>Hello</p></body></html>\n';
const NO_BODY_PAGE = '<!doctype html><p>No closing body tag here';
const MANY_BODY_PAGE =
  '<html><body><script>var a = "</body>";</script><!-- </BODY> --><p>x</p></Body>\n<footer>after</footer></html>';
const BIN = crypto.randomBytes(100 * 1024);
const SECRET = 'TOP-SECRET-OUTSIDE-THE-ROOT';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// The agent element is the same in every page and delivery: the ticket
// travels in the Receipt-Ticket and Server-Timing headers.
const ELEMENT = '<script src="/_receipt/agent.js" async></script>';
const element = () => ELEMENT;
const serverTiming = (ticket) => `receipt;desc="${ticket}"`;

describe('content and deliveries', () => {
  let srv;
  let outside;
  before(async () => {
    outside = tempDir('receipt-outside-');
    fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
    srv = await startServer({
      files: {
        'index.html': PAGE,
        'nobody.html': NO_BODY_PAGE,
        'many.html': MANY_BODY_PAGE,
        'UPPER.html': '<HTML><BODY>upper</BODY></HTML>',
        'blob.bin': BIN,
        'docs/index.html': PAGE,
        'docs/a.txt': 'plain text\n',
        '.hidden': SECRET,
        'sub/.git/config': SECRET,
      },
      args: ['--access-log', '/dev/null'],
    });
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(srv.root, 'link-out'));
    fs.symlinkSync('../' + path.basename(outside) + '/secret.txt', path.join(srv.root, 'link-up'));
    fs.symlinkSync('docs/a.txt', path.join(srv.root, 'link-in'));
  });
  after(async () => {
    const { code } = await srv.stop();
    assert.equal(code, 0, srv.log());
  });

  test('a GET of HTML is a delivery with the headers of section 4', async () => {
    const res = await fetch(srv.url + '/index.html');
    assert.equal(res.status, 200);
    const body = await res.text();
    const id = res.headers.get('receipt-delivery');
    const ticket = res.headers.get('receipt-ticket');
    assert.match(id, UUID7);
    assert.match(ticket, /^[A-Za-z0-9_-]{1,512}$/);
    assert.equal(res.headers.get('server-timing'), serverTiming(ticket));
    assert.equal(res.headers.get('cache-control'), 'private, no-cache');
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const expected = PAGE.replace('</body>', ELEMENT + '</body>');
    assert.equal(body, expected);
    // Repr-Digest describes the bytes sent: the page with its element.
    assert.equal(res.headers.get('repr-digest'), `sha-256=:${sha256(expected).toString('base64')}:`);
    assert.equal(Number(res.headers.get('content-length')), Buffer.byteLength(expected));
    assert.equal(res.headers.get('receipt-plugin'), null);
    // No validators: a page view is never a 304 that brings back an old delivery.
    assert.equal(res.headers.get('etag'), null);
    assert.equal(res.headers.get('last-modified'), null);
    assert.equal(res.headers.get('accept-ranges'), null);
    // The ledger keeps the stored file's digest as the version, and the
    // digest of what was sent beside it.
    const row = await srv.until(() => srv.query(`SELECT * FROM deliveries WHERE id = '${id}'`)[0]);
    assert.equal(row.path, '/index.html');
    assert.equal(row.size, Buffer.byteLength(PAGE));
  });

  test('every page view is the same bytes, and a new delivery', async () => {
    const seen = new Set();
    let body = null;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(srv.url + '/index.html', { headers: { 'If-None-Match': '*' } });
      assert.equal(res.status, 200, 'conditionals do not apply to an injected page');
      const text = await res.text();
      if (body !== null) assert.equal(text, body);
      body = text;
      seen.add(res.headers.get('receipt-delivery'));
    }
    assert.equal(seen.size, 3);
  });

  test('the element goes before the last </body>, in any case, or at the end', async () => {
    for (const [name, page, expect] of [
      ['/nobody.html', NO_BODY_PAGE, (t) => NO_BODY_PAGE + element(t)],
      ['/many.html', MANY_BODY_PAGE,
        (t) => MANY_BODY_PAGE.replace('</Body>', element(t) + '</Body>')],
      ['/UPPER.html', null, (t) => `<HTML><BODY>upper${element(t)}</BODY></HTML>`],
    ]) {
      const res = await fetch(srv.url + name);
      assert.equal(res.status, 200, name);
      const body = await res.text();
      assert.equal(body, expect(res.headers.get('receipt-ticket')), name);
      assert.equal(res.headers.get('repr-digest'), `sha-256=:${sha256(body).toString('base64')}:`);
      assert.equal(body.split('/_receipt/agent.js').length, 2, 'exactly one element');
    }
  });

  test('a binary is delivered byte for byte with its digest', async () => {
    const res = await fetch(srv.url + '/blob.bin');
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(BIN));
    assert.equal(res.headers.get('repr-digest'), `sha-256=:${sha256(BIN).toString('base64')}:`);
    assert.match(res.headers.get('receipt-delivery'), UUID7);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  });

  test('two GETs give two IDs and two ledger rows', async () => {
    const a = await fetch(srv.url + '/docs/a.txt');
    const b = await fetch(srv.url + '/docs/a.txt');
    await a.text();
    await b.text();
    const ids = [a.headers.get('receipt-delivery'), b.headers.get('receipt-delivery')];
    assert.notEqual(ids[0], ids[1]);
    assert.ok(ids[0] < ids[1], 'UUIDv7 IDs sort in issue order');
    const rows = await srv.until(() => {
      const r = srv.query(`SELECT * FROM deliveries WHERE id IN ('${ids[0]}','${ids[1]}') ORDER BY id`);
      return r.length === 2 && r;
    });
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.path, '/docs/a.txt');
      assert.equal(row.status, 'issued');
      assert.equal(row.size, 11);
      assert.equal(row.client_addr, '127.0.0.1');
      assert.ok(Math.abs(row.issued_ms - Date.now()) < 60000);
    }
  });

  test('HEAD, 304, 206, 404 and 405 are no deliveries and add no rows', async () => {
    await new Promise((r) => setTimeout(r, 200)); // let earlier rows land
    const before = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;

    const head = await fetch(srv.url + '/index.html', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('receipt-delivery'), null);
    const get = await fetch(srv.url + '/index.html');
    const getBody = await get.text();
    assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(getBody),
      'HEAD announces the length a GET delivers');

    // Files that are not injected keep their validators and 304.
    const bin = await fetch(srv.url + '/blob.bin');
    await bin.arrayBuffer();
    const etag = bin.headers.get('etag');
    assert.ok(etag);
    const notModified = await fetch(srv.url + '/blob.bin', { headers: { 'If-None-Match': etag } });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.get('receipt-delivery'), null);
    // RFC 9110 8.6: a 304's Content-Length, if any, is the 200's.
    assert.equal(notModified.headers.get('content-length'), String(BIN.length));

    const lm = bin.headers.get('last-modified');
    const ims = await fetch(srv.url + '/blob.bin', { headers: { 'If-Modified-Since': lm } });
    assert.equal(ims.status, 304);

    const partial = await fetch(srv.url + '/blob.bin', { headers: { Range: 'bytes=10-19' } });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-range'), `bytes 10-19/${BIN.length}`);
    assert.ok(Buffer.from(await partial.arrayBuffer()).equals(BIN.subarray(10, 20)));
    assert.equal(partial.headers.get('receipt-delivery'), null);

    const htmlRange = await fetch(srv.url + '/index.html', { headers: { Range: 'bytes=0-9' } });
    assert.equal(htmlRange.status, 200, 'an injected page is sent whole');
    assert.match(htmlRange.headers.get('receipt-delivery'), UUID7);
    await htmlRange.text();

    const suffix = await fetch(srv.url + '/blob.bin', { headers: { Range: 'bytes=-5' } });
    assert.equal(suffix.status, 206);
    assert.ok(Buffer.from(await suffix.arrayBuffer()).equals(BIN.subarray(BIN.length - 5)));

    const unsat = await fetch(srv.url + '/blob.bin', { headers: { Range: `bytes=${BIN.length}-` } });
    assert.equal(unsat.status, 416);
    assert.equal(unsat.headers.get('content-range'), `bytes */${BIN.length}`);
    await unsat.text();

    const missing = await fetch(srv.url + '/nope.html');
    assert.equal(missing.status, 404);
    const err = await missing.json();
    assert.equal(err.error, 'not_found');
    assert.equal(typeof err.message, 'string');

    const post = await fetch(srv.url + '/index.html', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.text();

    await new Promise((r) => setTimeout(r, 300));
    const after = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    assert.equal(after, before + 3,
      'only the GETs of /index.html (plain and with a range) and of /blob.bin became rows');
  });

  test('a directory serves its index.html; without the slash it redirects', async () => {
    const res = await fetch(srv.url + '/docs/');
    assert.equal(res.status, 200);
    const id = res.headers.get('receipt-delivery');
    await res.text();
    const redirect = await fetch(srv.url + '/docs', { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/docs/');
    const rows = await srv.until(() => srv.query(`SELECT path FROM deliveries WHERE id='${id}'`).length &&
      srv.query(`SELECT path FROM deliveries WHERE id='${id}'`));
    assert.equal(rows[0].path, '/docs/index.html');
  });

  test('hostile paths never serve a byte from outside the root', async () => {
    const targets = [
      '/../secret.txt',
      '/../../../../etc/passwd',
      '/%2e%2e/secret.txt',
      '/%2E%2E/%2e%2e/etc/passwd',
      '/docs/%2e%2e/%2e%2e/etc/passwd',
      '/..%2f..%2fetc%2fpasswd',
      '/%2e%2e%2f' + path.basename(outside) + '%2fsecret.txt',
      '/link-out',
      '/link-up',
      '/.hidden',
      '/%2ehidden',
      '/sub/.git/config',
      '/index.html%00.txt',
      '/%00',
      '//etc/passwd',
      '/docs/./../.hidden',
      '/' + 'a/'.repeat(700),
      '/' + 'x'.repeat(5000),
      'index.html',
      '/%',
      '/%zz',
    ];
    for (const t of targets) {
      const raw = await rawRequest(srv.port, `GET ${t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const status = statusOf(raw);
      assert.ok(!raw.includes(SECRET), `${t} leaked the secret`);
      assert.ok(!raw.includes('root:x:0:0'), `${t} leaked /etc/passwd`);
      assert.ok(status >= 300 || status === 0, `${t} answered ${status}`);
    }
    const inside = await fetch(srv.url + '/link-in');
    assert.equal(inside.status, 200, 'a symlink inside the root is followed');
    assert.equal(await inside.text(), 'plain text\n');
  });

  test('limits: long request targets get 414, large headers 431', async () => {
    const long = await rawRequest(srv.port,
      `GET /${'y'.repeat(5000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(long), 414);
    // The longest content path a ticket carries is 200 bytes: a file with a
    // longer one is answered 414, not served without a delivery.
    const name = 'p'.repeat(199);
    fs.writeFileSync(path.join(srv.root, name), 'long');
    const fits = await fetch(`${srv.url}/${name}`);
    assert.equal(fits.status, 200);
    assert.match(fits.headers.get('receipt-delivery'), UUID7);
    await fits.text();
    fs.mkdirSync(path.join(srv.root, 'd'), { recursive: true });
    fs.writeFileSync(path.join(srv.root, 'd', name), 'long');
    const over = await fetch(`${srv.url}/d/${name}`);
    assert.equal(over.status, 414);
    assert.equal((await over.json()).error, 'uri_too_long');
    const big = await rawRequest(srv.port,
      `GET /index.html HTTP/1.1\r\nHost: x\r\nX-Big: ${'z'.repeat(20000)}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(big), 431);
  });

  test('/_receipt/jwks.json publishes both keys with their thumbprints', async () => {
    const res = await fetch(srv.url + '/_receipt/jwks.json');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/jwk-set\+json/);
    const { keys } = await res.json();
    assert.equal(keys.length, 2);
    const uses = keys.map((k) => k.use).sort();
    assert.deepEqual(uses, ['enc', 'sig']);
    for (const k of keys) {
      assert.equal(k.kty, 'EC');
      assert.equal(k.crv, 'P-256');
      assert.equal(k.d, undefined, 'no private part');
      assert.equal(k.kid, await calculateJwkThumbprint({ kty: k.kty, crv: k.crv, x: k.x, y: k.y }));
    }
  });

  test('unknown /_receipt/ paths answer 404 with a JSON error', async () => {
    for (const p of ['/_receipt/', '/_receipt/nothing', '/_receipt/jwks.json/x']) {
      const res = await fetch(srv.url + p);
      assert.equal(res.status, 404, p);
      const body = await res.json();
      assert.equal(body.error, 'not_found');
      assert.ok(body.message.length > 0);
    }
  });
});

describe('server options and lifecycle', () => {
  test('--no-inject serves HTML unchanged; --add-header adds headers', async () => {
    const srv = await startServer({
      files: { 'p.html': PAGE },
      args: ['--no-inject', '--add-header', "Content-Security-Policy: script-src 'self'"],
    });
    try {
      const res = await fetch(srv.url + '/p.html');
      assert.equal(await res.text(), PAGE);
      assert.match(res.headers.get('receipt-delivery'), UUID7);
      assert.equal(res.headers.get('content-security-policy'), "script-src 'self'");
    } finally {
      assert.equal((await srv.stop()).code, 0);
    }
  });

  test('keys persist across restarts and the state directory must be private', async () => {
    const srv = await startServer({ files: { 'a.txt': 'a' } });
    const jwks1 = await (await fetch(srv.url + '/_receipt/jwks.json')).json();
    assert.equal((await srv.stop()).code, 0);
    const keyFile = path.join(srv.stateDir, 'server-keys.json');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(fs.statSync(srv.stateDir).mode & 0o777, 0o700);

    const again = await startServer({ root: srv.root, stateDir: srv.stateDir });
    const jwks2 = await (await fetch(again.url + '/_receipt/jwks.json')).json();
    assert.deepEqual(jwks2, jwks1);
    assert.equal((await again.stop()).code, 0);

    fs.chmodSync(srv.stateDir, 0o755);
    const refused = await runReceiptd(['--root', srv.root, '--listen', `127.0.0.1:${await freePort()}`,
      '--state-dir', srv.stateDir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /state/i);
    fs.chmodSync(srv.stateDir, 0o700);
    fs.chmodSync(keyFile, 0o644);
    const refused2 = await runReceiptd(['--root', srv.root, '--listen', `127.0.0.1:${await freePort()}`,
      '--state-dir', srv.stateDir]);
    assert.equal(refused2.code, 1);
    assert.match(refused2.stderr, /server-keys\.json/);
    fs.chmodSync(keyFile, 0o600);
    const tokenFile = path.join(srv.stateDir, 'admin-token');
    fs.chmodSync(tokenFile, 0o644);
    const checked = await runReceiptd(['--check', '--root', srv.root, '--state-dir', srv.stateDir]);
    assert.equal(checked.code, 1, '--check refuses a readable admin token');
    assert.match(checked.stderr, /admin-token/);
  });

  test('receiptd keys: show, export and import to another node, never replacing by accident', async () => {
    const keysCmd = (...args) => spawnSync(RECEIPTD, ['keys', ...args], { encoding: 'utf8' });
    const a = await startServer({ files: { 'a.txt': 'a' } });
    const jwksA = await (await fetch(a.url + '/_receipt/jwks.json')).json();
    const logKeyA = (await (await fetch(a.url + '/_receipt/log/key')).text()).trim();
    assert.equal((await a.stop()).code, 0);
    const shownA = keysCmd('show', '--state-dir', a.stateDir);
    assert.equal(shownA.status, 0, shownA.stderr);
    assert.match(shownA.stdout, /^encryption key  [A-Za-z0-9_-]{43}\nsigning key     [A-Za-z0-9_-]{43}\nticket secret   sha256:[0-9a-f]{16}\.\.\.\nlog key         127\.0\.0\.1:\d+\/_receipt\/log\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}\n$/);
    assert.equal(shownA.stdout.split('\n')[3].slice(16), logKeyA, 'the evidence log key, as served');
    const exported = keysCmd('export', '--state-dir', a.stateDir);
    assert.equal(exported.status, 0);
    const file = JSON.parse(exported.stdout);
    assert.ok(!shownA.stdout.includes(file.ticket_secret) && !shownA.stdout.includes(file.enc.d));

    // Into a new node: the same keys, the same JWK Set, mode 0600 in a 0700 directory.
    const stateB = path.join(tempDir(), 'b');
    const imported = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', stateB, '-'], { input: exported.stdout, encoding: 'utf8' });
    assert.equal(imported.status, 0, imported.stderr);
    assert.equal(fs.statSync(path.join(stateB, 'server-keys.json')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(stateB).mode & 0o777, 0o700);
    assert.equal(keysCmd('show', '--state-dir', stateB).stdout, shownA.stdout);
    const b = await startServer({ files: { 'a.txt': 'a' }, stateDir: stateB });
    assert.deepEqual(await (await fetch(b.url + '/_receipt/jwks.json')).json(), jwksA);
    assert.equal((await b.stop()).code, 0);
    const again = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', stateB, '-'], { input: exported.stdout, encoding: 'utf8' });
    assert.equal(again.status, 0);
    assert.match(again.stdout, /the same keys are already in/);

    // A node with keys of its own keeps them unless told.
    const c = await startServer({ files: { 'a.txt': 'a' } });
    assert.equal((await c.stop()).code, 0);
    const shownC = keysCmd('show', '--state-dir', c.stateDir).stdout;
    const refused = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', c.stateDir, '-'], { input: exported.stdout, encoding: 'utf8' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /holds other keys.*--replace/);
    assert.equal(keysCmd('show', '--state-dir', c.stateDir).stdout, shownC);
    const replaced = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', c.stateDir, '--replace', '-'], { input: exported.stdout, encoding: 'utf8' });
    assert.equal(replaced.status, 0, replaced.stderr);
    assert.equal(keysCmd('show', '--state-dir', c.stateDir).stdout, shownA.stdout);

    // While a server runs on a state directory, its keys stay as it loaded
    // them, and a second server refuses the directory; once it stops, both
    // work.
    const running = await startServer({ files: { 'a.txt': 'a' } });
    const shownRunning = keysCmd('show', '--state-dir', running.stateDir).stdout;
    const rotateBusy = keysCmd('rotate', 'signing', '--state-dir', running.stateDir);
    assert.equal(rotateBusy.status, 1);
    assert.match(rotateBusy.stderr, /another receiptd is using .*receiptd\.lock.*stop it first/);
    const importBusy = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', running.stateDir, '--replace', '-'], { input: exported.stdout, encoding: 'utf8' });
    assert.equal(importBusy.status, 1);
    assert.match(importBusy.stderr, /another receiptd is using/);
    assert.equal(keysCmd('show', '--state-dir', running.stateDir).stdout, shownRunning, 'the keys are unchanged');
    const second = await runReceiptd(['--root', tempDir(), '--listen', '127.0.0.1:0', '--admin-listen', 'off',
      '--state-dir', running.stateDir]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another receiptd is using/);
    assert.equal((await running.stop()).code, 0);
    const rotated = keysCmd('rotate', 'signing', '--state-dir', running.stateDir);
    assert.equal(rotated.status, 0, rotated.stderr);
    assert.notEqual(keysCmd('show', '--state-dir', running.stateDir).stdout, shownRunning);

    // Not a key file; usage errors; no keys to show.
    const garbage = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', path.join(tempDir(), 'd'), '-'], { input: '{"v":1}', encoding: 'utf8' });
    assert.equal(garbage.status, 1);
    assert.match(garbage.stderr, /private P-256 JWKs/);
    assert.equal(keysCmd('rotate').status, 2);
    assert.equal(keysCmd('import', '--state-dir', stateB).status, 2);
    assert.equal(keysCmd('show', '--replace').status, 2);
    assert.equal(keysCmd('show', '--state-dir', path.join(tempDir(), 'none')).status, 1);
    assert.match(keysCmd('--help').stdout, /^usage: receiptd keys show/);
  });

  test('--help, --version, --check and usage errors', async () => {
    const help = await runReceiptd(['--help']);
    assert.equal(help.code, 0);
    for (const flag of ['--root', '--listen', '--state-dir', '--ledger', '--ticket-ttl', '--no-inject',
      '--access-log', '--server-id', '--public-url', '--max-connections', '--idle-timeout',
      '--connection-memory', '--check']) {
      assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
    }
    const version = await runReceiptd(['--version']);
    assert.match(version.stdout, /^receiptd \d+\.\d+\.\d+/);
    const root = tempDir();
    const check = await runReceiptd(['--check', '--root', root, '--state-dir', path.join(tempDir(), 's')]);
    assert.equal(check.code, 0, check.stderr);
    const bad = await runReceiptd(['--root', root, '--ticket-ttl', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--ticket-ttl/);
    const noRoot = await runReceiptd(['--listen', '127.0.0.1:1']);
    assert.equal(noRoot.code, 2);
    const missingRoot = await runReceiptd(['--check', '--root', '/nonexistent/dir']);
    assert.equal(missingRoot.code, 1);
  });

  test('the access log has one combined-format line per request', async () => {
    const logFile = path.join(tempDir(), 'access.log');
    const srv = await startServer({ files: { 'a.txt': 'hello' }, args: ['--access-log', logFile] });
    await (await fetch(srv.url + '/a.txt', { headers: { 'User-Agent': 'e2e "agent"', Referer: 'http://r/' } })).text();
    await (await fetch(srv.url + '/missing')).text();
    assert.equal((await srv.stop()).code, 0);
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0],
      /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/a\.txt HTTP\/1\.1" 200 5 "http:\/\/r\/" "e2e \\x22agent\\x22"$/);
    assert.match(lines[1], /"GET \/missing HTTP\/1\.1" 404 \d+ /);
  });

  test('SIGHUP reopens the access log (rotation)', async () => {
    const dir = tempDir();
    const logFile = path.join(dir, 'access.log');
    const srv = await startServer({ files: { 'a.txt': 'hello' }, args: ['--access-log', logFile] });
    await (await fetch(srv.url + '/a.txt')).text();
    fs.renameSync(logFile, logFile + '.1');
    srv.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 200));
    await (await fetch(srv.url + '/a.txt?after')).text();
    assert.equal((await srv.stop()).code, 0, srv.log());
    assert.equal(fs.readFileSync(logFile + '.1', 'utf8').trim().split('\n').length, 1);
    assert.match(fs.readFileSync(logFile, 'utf8'), /"GET \/a\.txt\?after HTTP\/1\.1" 200 5 /);
  });

  test('idle connections are closed after --idle-timeout; --max-connections is a hard limit', async () => {
    const quick = await startServer({ files: { 'a.txt': 'hello' }, args: ['--idle-timeout', '1'] });
    try {
      const idle = net.connect(quick.port, '127.0.0.1');
      await new Promise((r) => idle.once('connect', r));
      const closed = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 6000);
        idle.once('close', () => { clearTimeout(timer); resolve(true); });
      });
      assert.ok(closed, 'an idle connection was closed by the server');
    } finally {
      assert.equal((await quick.stop()).code, 0, quick.log());
    }

    // the limit is split between the worker threads: one thread, two connections
    const srv = await startServer({ files: { 'a.txt': 'hello' }, args: ['--max-connections', '2', '--threads', '1'] });
    try {
      const held = [net.connect(srv.port, '127.0.0.1'), net.connect(srv.port, '127.0.0.1')];
      await Promise.all(held.map((s) => new Promise((r) => s.once('connect', r))));
      await new Promise((r) => setTimeout(r, 100));
      const third = await rawRequest(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 2000)
        .catch(() => '');
      assert.equal(statusOf(third), 0, 'a third connection is not served');
      held.forEach((s) => s.destroy());
      await new Promise((r) => setTimeout(r, 200));
      const again = await rawRequest(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(statusOf(again), 200, 'served again once there is room');
    } finally {
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  });

  test('SIGTERM under load: every 200 that carried a delivery ID has its row', async () => {
    const srv = await startServer({ files: { 'p.html': PAGE, 'b.bin': BIN } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const ids = [];
    let stop = false;
    const get = (p) => new Promise((resolve) => {
      const req = http.get(srv.url + p, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200 && res.complete) ids.push(res.headers['receipt-delivery']);
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
    });
    const workers = Array.from({ length: 16 }, async (_, i) => {
      while (!stop) await get(i % 2 ? '/p.html' : '/b.bin');
    });
    await new Promise((r) => setTimeout(r, 1500));
    const exit = srv.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(workers);
    agent.destroy();
    const { code } = await exit;
    assert.equal(code, 0, srv.log());
    assert.ok(ids.length > 100, `load ran (${ids.length} deliveries)`);
    const rows = new Set(srv.query('SELECT id FROM deliveries').map((r) => r.id));
    const missing = ids.filter((id) => !rows.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${ids.length} deliveries have no row`);

    const again = await startServer({ root: srv.root, stateDir: srv.stateDir });
    const res = await fetch(again.url + '/p.html');
    await res.text();
    const id = res.headers.get('receipt-delivery');
    await again.until(() => again.query(`SELECT id FROM deliveries WHERE id='${id}'`).length);
    assert.equal((await again.stop()).code, 0);
    const all = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    assert.equal(all, rows.size + 1, 'the restart continued the same ledger');
  });
});
