// receiptd behind nginx terminating TLS (--trusted-proxy): the ledger,
// plug-in data, the admin API and the access log record the address nginx
// saw, from a client on 127.0.0.5; the same headers from a peer that is no
// trusted proxy are ignored; a malformed Forwarded header changes nothing
// but a counter; trusted proxies are exempt from --per-ip-connections, and
// forwarded addresses are limited instead.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { startServer, freePort, tempDir, rawRequest, statusOf } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation } from './lib/client.mjs';
import { makeCA } from './lib/tls.mjs';
import { startNginx, nginxMissing, tlsServerLines, forwardingLines } from './lib/nginx.mjs';

const CLIENT_ADDR = '127.0.0.5';
const STRANGER = '127.0.0.6';
const BIG = 8 * 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A request from a chosen local address; resolves with {status, headers, body}. */
function request(url, { localAddress, method = 'GET', headers = {}, body = null, ca } = {}) {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, headers, localAddress, ca, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** /metrics as {name{labels}: value}. */
async function metrics(srv) {
  const res = await request(`${srv.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
  const out = {};
  for (const line of res.body.toString().split('\n')) {
    const m = /^(receiptd_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

const forwarded = (m, outcome) => m[`receiptd_forwarded_headers_total{outcome="${outcome}"}`];

describe('receiptd behind nginx with --trusted-proxy', { skip: nginxMissing() || false }, () => {
  let ca, srv, nginx, front, accessLog, stateDir;

  before(async () => {
    ca = makeCA();
    const pair = ca.issue();
    const port = await freePort();
    front = `https://127.0.0.1:${port}`;
    accessLog = path.join(tempDir('receipt-log-'), 'access.log');
    srv = await startServer({
      files: { '/doc.bin': crypto.randomBytes(20000), '/big.bin': crypto.randomBytes(BIG), '/a.html': '<p>x</p>' },
      args: ['--trusted-proxy', '127.0.0.1', '--trusted-proxy', '::1', '--public-url', front,
        '--access-log', accessLog, '--per-ip-connections', '1'],
    });
    stateDir = srv.stateDir;
    // Recipe 2 of docs/deployment.md: nginx says whom it forwards for in
    // X-Forwarded-For (appended to what the client sent) and drops any
    // Forwarded header of the client's.
    nginx = await startNginx({
      ports: [port],
      servers: `
    upstream receiptd {
        server 127.0.0.1:${srv.port};
        keepalive 32;
    }
    server {
        listen 127.0.0.1:${port} ssl;
        ${tlsServerLines({ cert: pair.chain, key: pair.key })}
        access_log ${path.dirname(accessLog)}/nginx.log proxied;
        location / {
            proxy_pass http://receiptd;
            ${forwardingLines()}
            proxy_cache off;
            gzip off;
        }
    }`,
    });
  });

  after(async () => {
    await nginx?.stop();
    await srv?.stop();
  });

  test('a delivery and its confirmation from 127.0.0.5 through nginx are recorded as 127.0.0.5', async () => {
    const client = await newClient();
    const jwks = await fetchJwks(srv.url);
    const ca0 = fs.readFileSync(ca.cert);
    // The client claims other addresses: in X-Forwarded-For, the right-most
    // untrusted address wins; a Forwarded of its own, nginx drops.
    const got = await request(`${front}/doc.bin`, {
      localAddress: CLIENT_ADDR, ca: ca0,
      headers: { 'Receipt-Client-Key': client.header, 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=9.9.9.9' },
    });
    assert.equal(got.status, 200);
    const id = got.headers['receipt-delivery'];
    const { payload: plugin } = await openPlugin(client, jwks, got.headers['receipt-plugin']);
    assert.equal(plugin.client.addr, CLIENT_ADDR, 'plug-in data');
    assert.equal(plugin.server.confirm, `${front}/_receipt/confirm`);

    const body = await sealConfirmation(client, jwks, confirmation(plugin));
    const conf = await request(plugin.server.confirm, {
      method: 'POST', localAddress: CLIENT_ADDR, ca: ca0, body,
      headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': client.header },
    });
    assert.equal(conf.status, 200, conf.body.toString());

    const row = await srv.until(() => srv.query(`SELECT client_addr, bound_addr, confirm_addr, status FROM deliveries WHERE id = '${id}' AND status = 'confirmed'`)[0]);
    assert.deepEqual(row, { client_addr: CLIENT_ADDR, bound_addr: CLIENT_ADDR, confirm_addr: CLIENT_ADDR, status: 'confirmed' });

    const api = await request(`${srv.adminUrl}/api/deliveries/${id}`, { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
    assert.equal(api.status, 200);
    const d = JSON.parse(api.body);
    assert.equal(d.client_addr, CLIENT_ADDR);
    assert.equal(d.confirm_addr, CLIENT_ADDR);

    // The access log names the client too, and nginx's own log agrees.
    const line = await srv.until(() => fs.readFileSync(accessLog, 'utf8').split('\n').find((l) => l.includes('GET /doc.bin')));
    assert.ok(line?.startsWith(`${CLIENT_ADDR} `), line);
    const nginxLine = fs.readFileSync(path.join(path.dirname(accessLog), 'nginx.log'), 'utf8').split('\n').find((l) => l.includes('GET /doc.bin'));
    assert.ok(nginxLine?.startsWith(`${CLIENT_ADDR} `), nginxLine);
  });

  test('the same header from a peer that is no trusted proxy is ignored', async () => {
    const before = await metrics(srv);
    const res = await request(`${srv.url}/doc.bin`, { localAddress: STRANGER, headers: { 'X-Forwarded-For': '203.0.113.9', Forwarded: 'for=203.0.113.9' } });
    assert.equal(res.status, 200);
    const id = res.headers['receipt-delivery'];
    const row = await srv.until(() => srv.query(`SELECT client_addr FROM deliveries WHERE id = '${id}'`)[0]);
    assert.deepEqual(row, { client_addr: STRANGER });
    const after = await metrics(srv);
    assert.equal(forwarded(after, 'untrusted'), forwarded(before, 'untrusted') + 1);
    assert.equal(forwarded(after, 'used'), forwarded(before, 'used'));
  });

  test('a malformed Forwarded header from a trusted proxy changes nothing but a counter', async () => {
    const before = await metrics(srv);
    // From 127.0.0.1, a trusted proxy; Forwarded wins over X-Forwarded-For,
    // and being malformed, neither is believed.
    const res = await request(`${srv.url}/doc.bin`, { headers: { Forwarded: 'for="[2001:db8::1"', 'X-Forwarded-For': '198.51.100.7' } });
    assert.equal(res.status, 200);
    const id = res.headers['receipt-delivery'];
    const row = await srv.until(() => srv.query(`SELECT client_addr FROM deliveries WHERE id = '${id}'`)[0]);
    assert.deepEqual(row, { client_addr: '127.0.0.1' });
    const after = await metrics(srv);
    for (const [k, v] of Object.entries(after)) {
      if (k.startsWith('receiptd_forwarded_headers_total')) {
        assert.equal(v, before[k] + (k.includes('malformed') ? 1 : 0), k);
      }
    }
    // A well-formed one from the same proxy is believed.
    const ok = await request(`${srv.url}/doc.bin`, { headers: { Forwarded: 'for="[2001:db8::1]:4711";proto=https' } });
    const okRow = await srv.until(() => srv.query(`SELECT client_addr FROM deliveries WHERE id = '${ok.headers['receipt-delivery']}'`)[0]);
    assert.deepEqual(okRow, { client_addr: '2001:db8::1' });
  });

  test('--per-ip-connections: the proxy is exempt; forwarded addresses are limited; others by connection', { timeout: 30000 }, async () => {
    // A slow download holds one request in progress for 203.0.113.9.
    const slow = await new Promise((resolve, reject) => {
      http.get(`${srv.url}/big.bin`, { agent: false, headers: { 'X-Forwarded-For': '203.0.113.9' } }, (res) => {
        res.pause();
        resolve(res);
      }).on('error', reject);
    });
    assert.equal(slow.statusCode, 200);
    const before = await metrics(srv);
    const second = await request(`${srv.url}/doc.bin`, { headers: { 'X-Forwarded-For': '203.0.113.9' } });
    assert.equal(second.status, 429);
    assert.equal(second.headers['retry-after'], '1');
    assert.equal(JSON.parse(second.body).error, 'too_many_requests');
    assert.equal((await request(`${srv.url}/doc.bin`, { headers: { 'X-Forwarded-For': '203.0.113.10' } })).status, 200);
    // The proxy's own connections: more than the limit, all served.
    const own = await Promise.all([1, 2, 3].map(() => request(`${srv.url}/doc.bin`)));
    assert.deepEqual(own.map((r) => r.status), [200, 200, 200]);
    const after = await metrics(srv);
    assert.equal(after['receiptd_per_address_limited_total{listener="public",kind="forwarded_request"}'],
      before['receiptd_per_address_limited_total{listener="public",kind="forwarded_request"}'] + 1);
    slow.destroy();
    await sleep(200);
    assert.equal((await request(`${srv.url}/doc.bin`, { headers: { 'X-Forwarded-For': '203.0.113.9' } })).status, 200);

    // A peer that is no proxy: one connection, and a second one is turned away.
    const held = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: STRANGER });
    await new Promise((r) => held.once('connect', r));
    await sleep(100);
    const refused = await rawRequest(srv.port, 'GET /doc.bin HTTP/1.1\r\nHost: x\r\n\r\n', 2000, STRANGER).catch(() => '');
    assert.equal(statusOf(refused), 0, 'no answer on a connection over the limit');
    held.destroy();
    await sleep(200);
    const again = await rawRequest(srv.port, 'GET /doc.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 5000, STRANGER);
    assert.equal(statusOf(again), 200);
    const final = await metrics(srv);
    assert.ok(final['receiptd_per_address_limited_total{listener="public",kind="connection"}'] >= 1);
    assert.match(srv.log(), /http: closed 0 connections with late headers, 0 with too slow a body, 0 idle ones to make room, and refused [1-9]\d* over the per-address limit \(1\)/);
  });
});
