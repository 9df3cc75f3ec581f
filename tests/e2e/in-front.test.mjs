// Recipe 4 of docs/deployment.md: receiptd on HTTPS in front of an
// application and of an nginx serving files, run from the configuration
// file the recipe shows (its addresses and paths made local). The
// application's pages, logins, redirects and cookies pass, its page views
// are deliveries; the files come from nginx under their prefix, delivered; the application learns who asked and over
// what; plain HTTP is redirected; an application that is down is a 502.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, freePort, tempDir, RECEIPTD } from './lib/server.mjs';
import { startApp, startNginx } from './lib/upstream.mjs';
import { makeCA } from './lib/tls.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DEPLOYMENT = path.join(here, '..', '..', 'docs', 'deployment.md');
const sha256hex = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** The configuration file of recipe 4, as docs/deployment.md shows it. */
function recipeConfig() {
  const text = fs.readFileSync(DEPLOYMENT, 'utf8');
  const section = text.split(/^## /m).find((s) => s.startsWith('4. In front of an existing application'));
  assert.ok(section, 'docs/deployment.md has recipe 4');
  const m = /```\n(# \/etc\/receiptd\/receiptd\.conf\n[\s\S]*?)```/.exec(section);
  assert.ok(m, 'recipe 4 shows its configuration file');
  return m[1];
}

describe('recipe 4: in front of an existing application', () => {
  let app;
  let nginx;
  let srv;
  let ca;
  let redirectPort;
  let conf;
  let logFile;
  const firmware = crypto.randomBytes(300 * 1024);

  before(async () => {
    app = await startApp();
    const files = tempDir('receipt-nginx-root-');
    fs.mkdirSync(path.join(files, 'files'));
    fs.writeFileSync(path.join(files, 'files', 'app.bin'), firmware);
    nginx = await startNginx({ root: files });
    ca = makeCA();
    const pair = ca.issue();
    const port = await freePort();
    redirectPort = await freePort();
    const dir = tempDir('receipt-recipe4-');
    logFile = path.join(dir, 'access.log');
    const local = recipeConfig()
      .replace('http://127.0.0.1:8000', app.url)
      .replace('http://127.0.0.1:8081/', `${nginx.url}/`)
      .replace('0.0.0.0:443', `127.0.0.1:${port}`)
      .replace('0.0.0.0:80', `127.0.0.1:${redirectPort}`)
      .replace('/etc/receiptd/tls/fullchain.pem', pair.chain)
      .replace('/etc/receiptd/tls/privkey.pem', pair.key)
      .replace('https://www.example.com', `https://localhost:${port}`)
      .replace('/var/tmp', dir)
      .replace('/var/log/receiptd/access.log', logFile);
    assert.doesNotMatch(local.replace(/^#.*\n/gm, ''), /\/etc\/|:8000|:8081|example\.com/, 'every address and path of the recipe is made local');
    conf = path.join(dir, 'receiptd.conf');
    fs.writeFileSync(conf, local, { mode: 0o640 });
    const check = spawnSync(RECEIPTD, ['--config', conf, '--state-dir', path.join(dir, 'check-state'), '--check'], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    srv = await startServer({ https: true, port, args: ['--config', conf] });
  });

  after(async () => {
    if (srv) {
      const { code } = await srv.stop();
      assert.equal(code, 0, srv.log());
    }
    if (nginx) await nginx.stop();
    if (app) await app.stop();
  });

  /** One request over https to receiptd, body whole. */
  const get = (p, { method = 'GET', headers = {}, body = null } = {}) => new Promise((resolve, reject) => {
    const req = https.request(`https://localhost:${srv.port}${p}`, { method, headers, ca: fs.readFileSync(ca.cert), agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });

  test('the application\'s pages, logins, redirects and cookies pass through over HTTPS', async () => {
    const page = await get('/page.html', { headers: { 'Sec-Fetch-Dest': 'document', 'Sec-Fetch-Mode': 'navigate' } });
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<title>/);
    assert.ok(page.body.toString().includes('<script src="/_receipt/agent.js" async></script></body>'));
    assert.ok(page.headers['receipt-delivery'], 'a page view is a delivery');
    assert.ok(page.headers['set-cookie'].some((c) => /^visit=\d+/.test(c)));
    const again = await get('/page.html');
    assert.notEqual(again.body.toString(), page.body.toString(), 'the page differs per request');

    const login = await get('/login', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'user=ada&next=%2Fprivate' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/private');
    assert.deepEqual(login.headers['set-cookie'], ['session=ok; Path=/; HttpOnly']);
    const denied = await get('/private');
    assert.equal(denied.status, 302);
    assert.equal(denied.headers.location, '/login?next=/private');
    const allowed = await get('/private', { headers: { Cookie: 'session=ok' } });
    assert.equal(allowed.status, 200);
  });

  test('files under /downloads/ come from nginx, the prefix replaced', async () => {
    const res = await get('/downloads/app.bin');
    assert.equal(res.status, 200);
    assert.equal(sha256hex(res.body), sha256hex(firmware));
    /* Fetched without fetch metadata: a device's delivery of nginx's bytes. */
    const id = res.headers['receipt-delivery'];
    assert.ok(id);
    const row = await srv.until(() => srv.query(`SELECT path, kind, lower(hex(sha256)) AS sha FROM deliveries WHERE id = '${id}'`)[0]);
    assert.deepEqual(row, { path: '/downloads/app.bin', kind: 'device', sha: sha256hex(firmware) });
    /* Not injected: nginx's validators pass, and its 304 with them. nginx
     * states no Content-Length in a 304, and neither does receiptd (RFC
     * 9110 8.6: a length there would be the 200's, not 0); a HEAD's is
     * nginx's, the file's. */
    assert.ok(res.headers.etag, 'nginx\'s ETag');
    const fresh = await get('/downloads/app.bin', { headers: { 'If-None-Match': res.headers.etag } });
    assert.equal(fresh.status, 304);
    assert.equal(fresh.headers['content-length'], undefined);
    assert.equal(fresh.headers.etag, res.headers.etag);
    assert.equal(fresh.headers['receipt-delivery'], undefined, 'a 304 is no delivery');
    const head = await get('/downloads/app.bin', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(firmware.length));
    const missing = await get('/downloads/none.bin');
    assert.equal(missing.status, 404);
  });

  test('the application learns who asked, over what, for which host', async () => {
    const res = await get('/headers', { headers: { 'X-Forwarded-For': '203.0.113.66', 'X-Forwarded-Proto': 'http' } });
    const seen = Object.fromEntries(JSON.parse(res.body).headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(seen.host, `localhost:${srv.port}`);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-host'], `localhost:${srv.port}`);
    assert.equal(seen.forwarded, `for=127.0.0.1;host="localhost:${srv.port}";proto=https`);
  });

  test('plain HTTP is redirected to the public URL', async () => {
    const res = await new Promise((resolve, reject) => {
      http.get(`http://127.0.0.1:${redirectPort}/page.html?x=1`, { agent: false }, (r) => {
        r.resume();
        r.on('end', () => resolve(r));
      }).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://localhost:${srv.port}/page.html?x=1`);
  });

  test('the access log has the proxied requests', async () => {
    await srv.until(() => fs.existsSync(logFile) && /GET \/downloads\/app\.bin/.test(fs.readFileSync(logFile, 'utf8')));
  });

  test('an application that is down is a 502 with a JSON error', async () => {
    await app.stop();
    const res = await get('/page.html');
    assert.equal(res.status, 502);
    assert.equal(JSON.parse(res.body).error, 'upstream_unavailable');
    app = null;
  });
});
