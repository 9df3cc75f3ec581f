// Absolute-form request targets ("GET http://host/path HTTP/1.1"), over raw
// sockets. RFC 9112 section 3.2.2: a server must accept them; the path and
// query are what an origin-form target would carry, and the authority
// replaces the Host header field, which HTTP/1.1 still requires. A target
// that is neither form (another scheme, user information, no host) is a
// 400 with a JSON error, on every listener.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, rawRequest, startServer } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';
import { startApp } from './lib/upstream.mjs';
import {
  newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, verifyReceipt, sha256b64url,
} from './lib/client.mjs';

const PAGE = '<!doctype html><html><body><h1>Terms</h1></body></html>';

// The answer to one request on a connection of its own: status, header
// fields (names in lower case) and body (a chunked one decoded).
async function ask(port, method, target, { host = 'ignored.example', headers = {}, body = '', version = 'HTTP/1.1' } = {}) {
  const lines = [`${method} ${target} ${version}`];
  if (host !== null) lines.push(`Host: ${host}`);
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body.length > 0 || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  lines.push('Connection: close');
  const raw = await rawRequest(port, `${lines.join('\r\n')}\r\n\r\n${body}`);
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an answer to ${method} ${target}: ${JSON.stringify(raw)}`);
  const [statusLine, ...fields] = raw.slice(0, end).split('\r\n');
  const h = {};
  for (const f of fields) {
    const i = f.indexOf(':');
    h[f.slice(0, i).toLowerCase()] = f.slice(i + 1).trim();
  }
  let rest = raw.slice(end + 4);
  if (/chunked/i.test(h['transfer-encoding'] || '')) {
    let out = '';
    for (;;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, nl), 16);
      if (!size) break;
      out += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 4 + size);
    }
    rest = out;
  }
  return { status: Number(statusLine.split(' ')[1]), headers: h, body: rest, raw };
}

function assertBadTarget(res, what) {
  assert.equal(res.status, 400, `${what}: ${res.raw}`);
  assert.equal(res.headers['content-type'], 'application/json', what);
  const body = JSON.parse(res.body);
  assert.equal(body.error, 'bad_target', what);
  assert.ok(body.message.length > 0, what);
  return body;
}

const BAD_TARGETS = [
  ['ftp://files.example/page.html', /http or https/],
  ['http://user:secret@files.example/page.html', /user information/],
  ['http:///page.html', /names no host/],
  ['http://?q=1', /names no host/],
  ['http://files%2Eexample/page.html', /not valid/],
  [`http://${'h'.repeat(300)}/page.html`, /too long/],
  ['page.html', /neither a path nor/],
  ['*', /neither a path nor/],
];

describe('absolute-form targets on the public listener', () => {
  let srv;
  let jwks;
  before(async () => {
    srv = await startServer({ files: { 'page.html': PAGE, 'a.txt': 'hello\n' } });
    jwks = await fetchJwks(srv.url);
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('content: the path and query are served as in origin form; Host is still required', async () => {
    const res = await ask(srv.port, 'GET', 'http://files.example/a.txt?x=1');
    assert.equal(res.status, 200, res.raw);
    assert.equal(res.body, 'hello\n');
    const upper = await ask(srv.port, 'HEAD', 'HTTPS://files.example:8443/a.txt');
    assert.equal(upper.status, 200, upper.raw);
    assert.equal(upper.headers['content-length'], '6');
    // No path: the path is "/", which has no index here.
    const root = await ask(srv.port, 'GET', 'http://files.example');
    assert.equal(root.status, 404, root.raw);
    assert.equal(JSON.parse(root.body).error, 'not_found');
    // HTTP/1.1 needs Host even when the target names the host.
    const noHost = await ask(srv.port, 'GET', 'http://files.example/a.txt', { host: null });
    assert.equal(noHost.status, 400);
    assert.equal(JSON.parse(noHost.body).error, 'bad_host');
    const old = await ask(srv.port, 'GET', 'http://files.example/a.txt', { host: null, version: 'HTTP/1.0' });
    assert.equal(old.status, 200, old.raw);
    // Percent-encoding in the path is decoded as in origin form.
    const encoded = await ask(srv.port, 'GET', 'http://files.example/%61.txt');
    assert.equal(encoded.status, 200, encoded.raw);
    assert.equal(encoded.body, 'hello\n');
  });

  test('a delivery, its plug-in data and its confirmation, all in absolute form', async () => {
    const page = await ask(srv.port, 'GET', 'http://files.example/page.html');
    assert.equal(page.status, 200, page.raw);
    const ticket = page.headers['receipt-ticket'];
    assert.match(ticket, /^[A-Za-z0-9_-]+$/);
    const delivery = page.headers['receipt-delivery'];

    const client = await newClient();
    const plug = await ask(srv.port, 'GET', `http://files.example/_receipt/plugin/${ticket}`,
      { headers: { 'Receipt-Client-Key': client.header } });
    assert.equal(plug.status, 200, plug.raw);
    assert.equal(plug.headers['content-type'], 'application/jose');
    const { payload } = await openPlugin(client, jwks, plug.body);
    assert.equal(payload.delivery, delivery);
    assert.equal(payload.content.path, '/page.html', 'the ledger\'s path is the origin form\'s');

    const jwe = await sealConfirmation(client, jwks,
      confirmation(payload, { sha256: await sha256b64url(Buffer.from(page.body, 'latin1')) }));
    const conf = await ask(srv.port, 'POST', 'http://files.example/_receipt/confirm',
      { headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': client.header }, body: jwe });
    assert.equal(conf.status, 200, conf.raw);
    const answer = JSON.parse(conf.body);
    assert.equal(answer.status, 'confirmed');
    const receipt = await verifyReceipt(jwks, answer.receipt);
    assert.equal(receipt.payload.delivery, delivery);
    const [row] = await srv.until(() => {
      const rows = srv.query(`SELECT * FROM deliveries WHERE id='${delivery}'`);
      return rows.length > 0 && rows[0].status === 'confirmed' ? rows : null;
    });
    assert.equal(row.path, '/page.html');
  });

  test('a target that is neither form is a 400 that says why, and changes nothing', async () => {
    const before = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    for (const [target, why] of BAD_TARGETS) {
      for (const method of ['GET', 'POST']) {
        const body = assertBadTarget(await ask(srv.port, method, target), `${method} ${target}`);
        assert.match(body.message, why, target);
      }
    }
    const after = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    assert.equal(after, before, 'no delivery');
  });
});

describe('absolute-form targets passed to an upstream', () => {
  let app;
  let srv;
  before(async () => {
    app = await startApp();
    srv = await startServer({ args: ['--upstream-for', '/app/', `${app.url}/`] });
  });
  after(async () => {
    await srv?.stop();
    await app?.stop();
  });

  test('the upstream gets the origin form, and the target\'s authority as Host', async () => {
    const res = await ask(srv.port, 'GET', 'http://front.example:8080/app/headers?x=%41',
      { host: 'ignored.example' });
    assert.equal(res.status, 200, res.raw);
    const seen = JSON.parse(res.body);
    assert.equal(seen.path, '/headers?x=%41');
    const fields = new Map(seen.headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(fields.get('host'), 'front.example:8080');
    assert.equal(fields.get('x-forwarded-host'), 'front.example:8080');
    assert.match(fields.get('forwarded'), /host="front\.example:8080"/);
    // No path: "/", which /app/ does not claim.
    const none = await ask(srv.port, 'GET', 'http://front.example?app=1');
    assert.equal(none.status, 404, none.raw);
    assertBadTarget(await ask(srv.port, 'GET', 'http://u@front.example/app/headers'), 'userinfo');
  });
});

describe('absolute-form targets on the redirect and admin listeners', () => {
  let srv;
  let redirectPort;
  before(async () => {
    const pair = makeCA().issue();
    redirectPort = await freePort();
    srv = await startServer({
      https: true,
      args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--redirect-http', `127.0.0.1:${redirectPort}`],
    });
  });
  after(async () => srv?.stop());

  test('the redirect listener keeps the path and query, and refuses what the public listener refuses', async () => {
    const res = await ask(redirectPort, 'GET', 'http://files.example/a/b?c=d');
    assert.equal(res.status, 308, res.raw);
    assert.equal(res.headers.location, `${srv.url}/a/b?c=d`);
    for (const [target, why] of BAD_TARGETS) {
      const body = assertBadTarget(await ask(redirectPort, 'GET', target), `redirect ${target}`);
      assert.match(body.message, why, target);
    }
  });

  test('the admin listener serves the path of an absolute-form target', async () => {
    const metrics = await ask(srv.adminPort, 'GET', 'http://admin.example/metrics');
    assert.equal(metrics.status, 200, metrics.raw);
    assert.match(metrics.body, /^receiptd_/m);
    const summary = await ask(srv.adminPort, 'GET', 'http://admin.example/api/summary',
      { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
    assert.equal(summary.status, 200, summary.raw);
    const dashboard = await ask(srv.adminPort, 'GET', 'http://admin.example');
    assert.equal(dashboard.status, 200, dashboard.raw);
    assert.match(dashboard.headers['content-type'], /^text\/html/);
    for (const [target, why] of BAD_TARGETS) {
      const body = assertBadTarget(await ask(srv.adminPort, 'GET', target), `admin ${target}`);
      assert.match(body.message, why, target);
    }
  });
});
