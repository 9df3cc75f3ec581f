// The delivery-confirmation protocol (docs/protocol.md sections 3-8), driven by an
// independent client built on npm `jose` and WebCrypto.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { base64url } from 'jose';
import { startServer } from './lib/server.mjs';
import {
  newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, craftJwe, postConfirm,
  verifyReceipt, sha256b64url, deriveKey, encKey, sigKey,
} from './lib/client.mjs';

const PAGE = '<!doctype html><html><body><h1>Terms</h1></body></html>';
const ELEMENT = '<script src="/_receipt/agent.js" async></script>';
const BIN = crypto.randomBytes(4096);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function devicePlugin(srv, client, jwks, path = '/blob.bin') {
  const res = await fetch(srv.url + path, { headers: { 'Receipt-Client-Key': client.header } });
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  const jwe = res.headers.get('receipt-plugin');
  assert.ok(jwe, 'Receipt-Plugin present');
  assert.equal(res.headers.get('receipt-ticket'), null);
  const { payload, header } = await openPlugin(client, jwks, jwe);
  return { res, body, payload, header };
}

async function browserTicket(srv, path = '/page.html') {
  const res = await fetch(srv.url + path);
  await res.text();
  return { ticket: res.headers.get('receipt-ticket'), id: res.headers.get('receipt-delivery') };
}

async function tradeTicket(srv, client, jwks, ticket) {
  const res = await fetch(`${srv.url}/_receipt/plugin/${ticket}`, { headers: { 'Receipt-Client-Key': client.header } });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get('content-type'), 'application/jose');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  return openPlugin(client, jwks, await res.text());
}

describe('protocol with an independent client', () => {
  let srv;
  let jwks;
  before(async () => {
    srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN }, args: ['--server-id', 'edge-1', '--node-id', 'edge-1b'] });
    jwks = await fetchJwks(srv.url);
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('device path: plug-in data in the response, confirmed, receipt verifies', async () => {
    const client = await newClient();
    const { res, body, payload, header } = await devicePlugin(srv, client, jwks);
    assert.ok(body.equals(BIN));
    assert.deepEqual(Object.keys(header).sort(), ['alg', 'cty', 'enc', 'kid', 'skid']);
    assert.equal(header.alg, 'dir');
    assert.equal(header.enc, 'A256GCM');
    assert.equal(header.kid, client.id);
    assert.equal(header.skid, encKey(jwks).kid);
    assert.equal(header.cty, 'receipt-plugin+json');
    assert.equal(payload.v, 1);
    assert.equal(payload.delivery, res.headers.get('receipt-delivery'));
    const binSha = await sha256b64url(BIN);
    assert.deepEqual(payload.content, {
      path: '/blob.bin', sha256: binSha, size: BIN.length, version: { sha256: binSha, size: BIN.length },
    });
    assert.equal(res.headers.get('repr-digest'), `sha-256=:${Buffer.from(base64url.decode(binSha)).toString('base64')}:`);
    assert.deepEqual(payload.client, { id: client.id, addr: '127.0.0.1' });
    assert.deepEqual(payload.server, { id: 'edge-1', node: 'edge-1b', kid: encKey(jwks).kid, confirm: `${srv.url}/_receipt/confirm` });
    assert.ok(payload.exp > payload.iat);
    assert.match(payload.ticket, /^[A-Za-z0-9_-]+$/);

    const jwe = await sealConfirmation(client, jwks, confirmation(payload, { sha256: await sha256b64url(body) }));
    const out = await postConfirm(payload.server.confirm, client, jwe);
    assert.equal(out.status, 200, out.text);
    assert.equal(out.headers.get('content-type'), 'application/json');
    assert.equal(out.json.delivery, payload.delivery);
    assert.equal(out.json.status, 'confirmed');
    const receipt = await verifyReceipt(jwks, out.json.receipt);
    assert.deepEqual(receipt.header, { alg: 'ES256', kid: sigKey(jwks).kid, typ: 'receipt+jwt' });
    assert.equal(receipt.payload.v, 1);
    assert.equal(receipt.payload.delivery, payload.delivery);
    assert.equal(receipt.payload.status, 'confirmed');
    assert.deepEqual(receipt.payload.content, payload.content);
    assert.deepEqual(receipt.payload.client, { id: client.id });
    assert.deepEqual(receipt.payload.server, {
      id: 'edge-1', node: 'edge-1b', url: srv.url, jwks: `${srv.url}/_receipt/jwks.json`,
    });
    assert.ok(receipt.payload.confirmed_at_ms >= receipt.payload.issued_at_ms);

    const [row] = srv.query(`SELECT * FROM deliveries WHERE id='${payload.delivery}'`);
    assert.equal(row.status, 'confirmed');
    assert.equal(row.client, client.id);
    assert.equal(row.confirmed_ms, receipt.payload.confirmed_at_ms);
    assert.equal(row.receipt, out.json.receipt);
    assert.equal(row.received_size, BIN.length);
    assert.equal(row.server, 'edge-1', 'the site');
    assert.deepEqual([row.issued_node, row.bound_node, row.confirmed_node], ['edge-1b', 'edge-1b', 'edge-1b']);
  });

  test('browser path: a ticket traded for plug-in data, bound, then confirmed', async () => {
    const client = await newClient();
    const { ticket, id } = await browserTicket(srv);
    const { payload, header } = await tradeTicket(srv, client, jwks, ticket);
    assert.equal(header.cty, 'receipt-plugin+json');
    assert.equal(payload.delivery, id);
    assert.notEqual(payload.ticket, ticket, 'the plug-in carries a ticket bound to the client');
    // The plug-in data describe the page as sent, the element in it; the
    // stored file is the version.
    assert.equal(payload.content.version.sha256, await sha256b64url(Buffer.from(PAGE)));
    assert.equal(payload.content.version.size, Buffer.byteLength(PAGE));
    assert.equal(payload.content.size, Buffer.byteLength(PAGE) + ELEMENT.length);
    const bound = await srv.until(() => {
      const [r] = srv.query(`SELECT * FROM deliveries WHERE id='${id}'`);
      return r && r.status === 'bound' && r;
    });
    assert.equal(bound.client, client.id);
    assert.equal(bound.bound_addr, '127.0.0.1');

    const out = await postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
    assert.equal(out.status, 200, out.text);
    assert.equal(out.json.status, 'confirmed');
  });

  test('a ticket-path client that hashes the page it received gets confirmed', async () => {
    const client = await newClient();
    const res = await fetch(srv.url + '/page.html');
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.toString().includes(ELEMENT), 'the page carries the agent element');
    const sent = await sha256b64url(body);
    assert.equal(res.headers.get('repr-digest'),
      `sha-256=:${Buffer.from(base64url.decode(sent)).toString('base64')}:`, 'Repr-Digest is of the body');
    const { payload } = await tradeTicket(srv, client, jwks, res.headers.get('receipt-ticket'));
    assert.equal(payload.content.sha256, sent);
    assert.equal(payload.content.size, body.length);
    const out = await postConfirm(payload.server.confirm, client,
      await sealConfirmation(client, jwks, confirmation(payload, { sha256: sent, size: body.length })));
    assert.equal(out.status, 200, out.text);
    assert.equal(out.json.status, 'confirmed');
    const receipt = await verifyReceipt(jwks, out.json.receipt);
    assert.deepEqual(receipt.payload.content, {
      path: '/page.html', sha256: sent, size: body.length,
      version: { sha256: await sha256b64url(Buffer.from(PAGE)), size: Buffer.byteLength(PAGE) },
    });
    // The stored file's digest is not what this client received.
    const other = await newClient();
    const again = await fetch(srv.url + '/page.html');
    await again.arrayBuffer();
    const p2 = (await tradeTicket(srv, other, jwks, again.headers.get('receipt-ticket'))).payload;
    const wrong = await postConfirm(p2.server.confirm, other, await sealConfirmation(other, jwks,
      confirmation(p2, { sha256: await sha256b64url(Buffer.from(PAGE)) })));
    assert.equal(wrong.json.status, 'corrupted');
  });

  test('confirming is idempotent; another client gets 409', async () => {
    const a = await newClient();
    const b = await newClient();
    const { ticket } = await browserTicket(srv);
    const pa = (await tradeTicket(srv, a, jwks, ticket)).payload;
    const pb = (await tradeTicket(srv, b, jwks, ticket)).payload;
    assert.equal(pa.delivery, pb.delivery, 'a saved page opened twice: one delivery');

    const first = await postConfirm(pa.server.confirm, a, await sealConfirmation(a, jwks, confirmation(pa)));
    assert.equal(first.status, 200);
    await sleep(5);
    const again = await postConfirm(pa.server.confirm, a, await sealConfirmation(a, jwks, confirmation(pa)));
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, first.json, 'same status and receipt');
    const other = await postConfirm(pb.server.confirm, b, await sealConfirmation(b, jwks, confirmation(pb)));
    assert.equal(other.status, 409);
    assert.equal(other.json.error, 'already_confirmed');
    assert.equal(other.headers.get('access-control-allow-origin'), '*', 'readable cross-origin');
    const [row] = srv.query(`SELECT client, status FROM deliveries WHERE id='${pa.delivery}'`);
    assert.deepEqual(row, { client: a.id, status: 'confirmed' });
  });

  test('a digest that differs is recorded as corrupted', async () => {
    const client = await newClient();
    const { payload } = await devicePlugin(srv, client, jwks);
    const wrong = await sha256b64url(Buffer.from('not the bytes'));
    const out = await postConfirm(payload.server.confirm, client,
      await sealConfirmation(client, jwks, confirmation(payload, { sha256: wrong })));
    assert.equal(out.status, 200);
    assert.equal(out.json.status, 'corrupted');
    const receipt = await verifyReceipt(jwks, out.json.receipt);
    assert.equal(receipt.payload.status, 'corrupted');
    const [row] = srv.query(`SELECT status, hex(received_sha256) AS h FROM deliveries WHERE id='${payload.delivery}'`);
    assert.equal(row.status, 'corrupted');
    assert.equal(row.h, Buffer.from(base64url.decode(wrong)).toString('hex').toUpperCase());
  });

  test('keep-alive: deliveries and confirmations share one connection', async () => {
    const client = await newClient();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const request = (method, path, headers, body) => new Promise((resolve, reject) => {
      const req = http.request(srv.url + path, { method, headers, agent, timeout: 10000 }, (res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve({ res, reused: req.reusedSocket, body: Buffer.concat(chunks) }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
      req.on('error', reject);
      req.end(body);
    });
    try {
      for (let i = 0; i < 3; i++) {
        const get = await request('GET', '/blob.bin', { 'Receipt-Client-Key': client.header });
        assert.equal(get.res.statusCode, 200);
        assert.notEqual(get.res.headers.connection, 'close');
        if (i > 0) assert.ok(get.reused, 'the GET reused the connection');
        const { payload } = await openPlugin(client, jwks, get.res.headers['receipt-plugin']);
        const jwe = await sealConfirmation(client, jwks, confirmation(payload));
        // with and without Content-Length (chunked): both must be read whole
        const headers = { 'Content-Type': 'application/jose', 'Receipt-Client-Key': client.header };
        if (i % 2 === 0) headers['Content-Length'] = Buffer.byteLength(jwe);
        const post = await request('POST', '/_receipt/confirm', headers, jwe);
        assert.equal(post.res.statusCode, 200, post.body.toString());
        assert.ok(post.reused, 'the confirmation reused the connection');
        assert.notEqual(post.res.headers.connection, 'close');
      }
    } finally {
      agent.destroy();
    }
  });

  test('the derived key is the same on both sides for many clients (cache)', async () => {
    for (let i = 0; i < 5; i++) {
      const client = await newClient();
      for (let j = 0; j < 2; j++) {
        const { payload } = await devicePlugin(srv, client, jwks);
        assert.equal(payload.client.id, client.id);
      }
    }
  });
});

describe('bad confirmations and plug-in requests change nothing', () => {
  let srv;
  let jwks;
  before(async () => {
    srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    jwks = await fetchJwks(srv.url);
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('a table of bad requests', async () => {
    const a = await newClient();
    const b = await newClient();
    const { payload: pa } = await devicePlugin(srv, a, jwks);
    const { payload: pb } = await devicePlugin(srv, b, jwks);
    const unbound = await browserTicket(srv);
    const ka = await deriveKey(a, encKey(jwks));
    const good = await sealConfirmation(a, jwks, confirmation(pa));
    const goodHeader = { alg: 'dir', enc: 'A256GCM', kid: a.id, skid: encKey(jwks).kid, cty: 'receipt-confirm+json' };
    const body = (obj) => new TextEncoder().encode(typeof obj === 'string' ? obj : JSON.stringify(obj));
    const parts = good.split('.');
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const offCurve = (() => {
      const raw = Buffer.from(a.raw);
      raw[64] ^= 1;
      return base64url.encode(raw);
    })();
    const deep = '{"v":1,"x":' + '['.repeat(64) + ']'.repeat(64) + '}';
    const random32 = crypto.randomBytes(32);
    const confirmUrl = `${srv.url}/_receipt/confirm`;
    await srv.until(() => srv.query('SELECT count(*) AS n FROM deliveries')[0].n === 3);
    await sleep(100);
    const snapshot = () => JSON.stringify(srv.query('SELECT * FROM deliveries ORDER BY id'));
    const before = snapshot();

    const cases = [
      ['truncated JWE', 400, () => postConfirm(confirmUrl, a, good.slice(0, good.length - 30))],
      ['tampered tag', 401, () => postConfirm(confirmUrl, a, parts.slice(0, 4).concat(flip(parts[4], 3)).join('.'))],
      ['tampered ciphertext', 401, () => postConfirm(confirmUrl, a, parts.slice(0, 3).concat(flip(parts[3], 5), parts[4]).join('.'))],
      ['tampered header', 400, () => postConfirm(confirmUrl, a, [flip(parts[0], 2), ...parts.slice(1)].join('.'))],
      ['wrong alg', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, alg: 'A256KW' }, body(confirmation(pa)), ka))],
      ['wrong enc', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, enc: 'A128GCM' }, body(confirmation(pa)), ka))],
      ['crit present', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, crit: ['exp'], exp: 1 }, body(confirmation(pa)), ka))],
      ['zip present', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, zip: 'DEF' }, body(confirmation(pa)), ka))],
      ['kid not the key thumbprint', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, kid: b.id }, body(confirmation(pa)), ka))],
      ['skid of no server key', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, skid: b.id }, body(confirmation(pa)), ka))],
      ['cty of plug-in data', 400, async () => postConfirm(confirmUrl, a, await craftJwe({ ...goodHeader, cty: 'receipt-plugin+json' }, body(confirmation(pa)), ka))],
      ['encrypted key not empty', 400, async () => postConfirm(confirmUrl, a, await craftJwe(goodHeader, body(confirmation(pa)), ka, { encryptedKey: 'AAAA' }))],
      ['four parts', 400, () => postConfirm(confirmUrl, a, parts.slice(0, 4).join('.'))],
      ['wrong key', 401, async () => postConfirm(confirmUrl, a, await craftJwe(goodHeader, body(confirmation(pa)), random32))],
      ['key off the curve', 400, () => postConfirm(confirmUrl, a, good, { header: offCurve })],
      ['no client key', 400, () => postConfirm(confirmUrl, a, good, { header: null })],
      ['key of another client', 400, () => postConfirm(confirmUrl, a, good, { header: b.header })],
      ['ticket of another client', 401, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), ticket: pb.ticket, delivery: pb.delivery }))],
      ['unbound ticket', 401, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), ticket: unbound.ticket, delivery: unbound.id }))],
      ['forged ticket', 401, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), ticket: base64url.encode(crypto.randomBytes(150)) }))],
      ['delivery not the ticket\'s', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), delivery: pb.delivery }))],
      ['client.id of another client', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), client: { id: b.id } }))],
      ['body over 16 KiB', 413, () => postConfirm(confirmUrl, a, 'x'.repeat(17 * 1024))],
      ['chunked body over 16 KiB', 413, () => new Promise((resolve, reject) => {
        const req = http.request(confirmUrl, { method: 'POST', headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': a.header } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text), text }));
        });
        req.on('error', reject);
        for (let i = 0; i < 20; i++) req.write('y'.repeat(1024)); // no Content-Length: chunked
        req.end();
      })],
      ['content GET with a body', 400, async () => {
        const raw = await new Promise((resolve, reject) => {
          const req = http.request(`${srv.url}/blob.bin`, { method: 'GET', headers: { 'Content-Length': 3 } }, (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text), text }));
          });
          req.on('error', reject);
          req.end('xyz');
        });
        return raw;
      }],
      ['wrong content type', 415, () => postConfirm(confirmUrl, a, good, { contentType: 'application/json' })],
      ['no content type', 415, async () => {
        const res = await fetch(confirmUrl, { method: 'POST', headers: { 'Receipt-Client-Key': a.header }, body: new Blob([good]) });
        return { status: res.status, json: await res.json() };
      }],
      ['JSON with duplicate keys', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks,
        JSON.stringify(confirmation(pa)).replace('"v":1', '"v":1,"v":1')))],
      ['wrong types', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), received: { sha256: null, size: '12', at_ms: 1 } }))],
      ['sha256 not 32 bytes', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, confirmation(pa, { sha256: 'AAAA' })))],
      ['missing ticket', 400, async () => { const c = confirmation(pa); delete c.ticket; return postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, c)); }],
      ['missing received', 400, async () => { const c = confirmation(pa); delete c.received; return postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, c)); }],
      ['huge numbers', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks,
        JSON.stringify(confirmation(pa)).replace(/"size":\d+/, '"size":123456789012345678901234567890')))],
      ['negative size', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, confirmation(pa, { size: -1 })))],
      ['deep nesting', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, deep))],
      ['not JSON', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, 'hello'))],
      ['a JSON array', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, '[1,2]'))],
      ['version 2', 400, async () => postConfirm(confirmUrl, a, await sealConfirmation(a, jwks, { ...confirmation(pa), v: 2 }))],
      ['GET on the confirm endpoint', 405, async () => {
        const res = await fetch(confirmUrl);
        return { status: res.status, json: await res.json() };
      }],
      ['plug-in: no key', 400, async () => {
        const res = await fetch(`${srv.url}/_receipt/plugin/${unbound.ticket}`);
        return { status: res.status, json: await res.json() };
      }],
      ['plug-in: key off the curve', 400, async () => {
        const res = await fetch(`${srv.url}/_receipt/plugin/${unbound.ticket}`, { headers: { 'Receipt-Client-Key': offCurve } });
        return { status: res.status, json: await res.json() };
      }],
      ['plug-in: ticket that does not open', 404, async () => {
        const res = await fetch(`${srv.url}/_receipt/plugin/${flip(unbound.ticket, 20)}`, { headers: { 'Receipt-Client-Key': b.header } });
        return { status: res.status, json: await res.json() };
      }],
      ['plug-in: a device ticket traded by another client', 404, async () => {
        const res = await fetch(`${srv.url}/_receipt/plugin/${pa.ticket}`, { headers: { 'Receipt-Client-Key': b.header } });
        return { status: res.status, json: await res.json() };
      }],
      ['plug-in: ticket over 512 characters', 404, async () => {
        const res = await fetch(`${srv.url}/_receipt/plugin/${'A'.repeat(600)}`, { headers: { 'Receipt-Client-Key': b.header } });
        return { status: res.status, json: await res.json() };
      }],
      ['content GET with a malformed key', 400, async () => {
        const res = await fetch(`${srv.url}/blob.bin`, { headers: { 'Receipt-Client-Key': 'abc' } });
        assert.equal(res.headers.get('receipt-delivery'), null);
        return { status: res.status, json: await res.json() };
      }],
    ];
    assert.ok(cases.length >= 25);
    for (const [name, status, run] of cases) {
      const out = await run();
      assert.equal(out.status, status, `${name}: ${out.text ?? JSON.stringify(out.json)}`);
      assert.equal(typeof out.json?.error, 'string', `${name}: JSON error`);
      assert.match(out.json.error, /^[a-z_]+$/, name);
      assert.equal(typeof out.json.message, 'string', name);
    }
    await sleep(200);
    assert.equal(snapshot(), before, 'the ledger is unchanged');

    // and the good confirmation still works afterwards
    const ok = await postConfirm(confirmUrl, a, good);
    assert.equal(ok.status, 200);
  });

  test('expired tickets: 410 for plug-in data and confirmations', async () => {
    const short = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN }, args: ['--ticket-ttl', '1'] });
    try {
      const j = await fetchJwks(short.url);
      const c = await newClient();
      const { ticket } = await browserTicket(short);
      const { payload } = await devicePlugin(short, c, j);
      await sleep(1200);
      const plug = await fetch(`${short.url}/_receipt/plugin/${ticket}`, { headers: { 'Receipt-Client-Key': c.header } });
      assert.equal(plug.status, 410);
      assert.equal((await plug.json()).error, 'ticket_expired');
      const out = await postConfirm(payload.server.confirm, c, await sealConfirmation(c, j, confirmation(payload)));
      assert.equal(out.status, 410);
      assert.equal(out.json.error, 'ticket_expired');
      await sleep(100);
      const [row] = short.query(`SELECT status FROM deliveries WHERE id='${payload.delivery}'`);
      assert.equal(row.status, 'bound');
    } finally {
      assert.equal((await short.stop()).code, 0);
    }
  });
});

describe('durability', () => {
  test('a confirmation whose issuance row was lost is accepted from its ticket', async () => {
    const srv = await startServer({ files: { 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const c = await newClient();
    const { payload } = await devicePlugin(srv, c, jwks);
    assert.equal((await srv.stop()).code, 0);
    // what a crash before the writer's commit would leave: no row at all
    srv.exec(`DELETE FROM deliveries WHERE id='${payload.delivery}'`);
    assert.equal(srv.query(`SELECT count(*) AS n FROM deliveries WHERE id='${payload.delivery}'`)[0].n, 0);
    const again = await startServer({ root: srv.root, stateDir: srv.stateDir });
    const out = await postConfirm(`${again.url}/_receipt/confirm`, c, await sealConfirmation(c, jwks, confirmation(payload)));
    assert.equal(out.status, 200, out.text);
    const [row] = again.query(`SELECT * FROM deliveries WHERE id='${payload.delivery}'`);
    assert.equal(row.status, 'confirmed');
    assert.equal(row.path, '/blob.bin');
    assert.equal(row.size, BIN.length);
    assert.equal(row.issued_ms, (await verifyReceipt(jwks, out.json.receipt)).payload.issued_at_ms);
    assert.equal((await again.stop()).code, 0);
  });

  test('confirmations answered 200 survive SIGKILL in a loop', async () => {
    let srv = await startServer({ files: { 'blob.bin': BIN } });
    const { root, stateDir, port } = srv;
    const jwks = await fetchJwks(srv.url);
    const clients = await Promise.all(Array.from({ length: 8 }, newClient));
    const confirmed = [];
    let attempts = 0;
    for (let round = 0; round < 5; round++) {
      let running = true;
      const workers = clients.map(async (c) => {
        while (running) {
          attempts++;
          try {
            const res = await fetch(srv.url + '/blob.bin', { headers: { 'Receipt-Client-Key': c.header } });
            await res.arrayBuffer();
            const { payload } = await openPlugin(c, jwks, res.headers.get('receipt-plugin'));
            const out = await postConfirm(payload.server.confirm, c, await sealConfirmation(c, jwks, confirmation(payload)));
            if (out.status === 200) confirmed.push({ id: payload.delivery, client: c.id });
          } catch {
            await sleep(5);
          }
        }
      });
      await sleep(250 + Math.floor(Math.random() * 250));
      await srv.kill();
      running = false;
      await Promise.all(workers);
      srv = await startServer({ root, stateDir, port });
    }
    assert.equal((await srv.stop()).code, 0);
    assert.ok(confirmed.length > 20, `confirmations ran (${confirmed.length} of ${attempts} attempts)`);
    const rows = new Map(srv.query(
      "SELECT id, client, status FROM deliveries WHERE status IN ('confirmed','corrupted')").map((r) => [r.id, r]));
    const lost = confirmed.filter((c) => rows.get(c.id)?.client !== c.client);
    assert.deepEqual(lost, [], `${lost.length} of ${confirmed.length} confirmations lost`);
  });
});
