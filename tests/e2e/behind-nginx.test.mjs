// Recipe 3 of docs/deployment.md: several receiptd nodes of one site (one
// PostgreSQL ledger, the same keys, one --server-id) behind one nginx
// upstream that terminates TLS. Deliveries from a client on 127.0.0.5 land
// on both nodes and are confirmed through nginx wherever it sends them; the
// shared ledger records the client's address and the node of each step;
// the receipt command confirms through it with --cacert; and with one node
// stopped, nginx sends everything to the other, which confirms deliveries
// the stopped one issued.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startServer, freePort, tempDir, pgCreateDatabase, pgUrl, pgQuery, RECEIPTD } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, verifyReceipt } from './lib/client.mjs';
import { runCli, clientDirs, removeOwnTempDirs, parseJsonLine } from './lib/cli.mjs';
import { makeCA } from './lib/tls.mjs';
import { startNginx, nginxMissing, tlsServerLines, forwardingLines } from './lib/nginx.mjs';

const CLIENT_ADDR = '127.0.0.5';
const NO_CA_ENV = { CURL_CA_BUNDLE: '', SSL_CERT_FILE: '', SSL_CERT_DIR: '' };
const files = { '/page.html': '<!doctype html><title>notice</title><p>terms</p>', '/fw.bin': crypto.randomBytes(30000) };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

const skip = nginxMissing() || (process.env.RECEIPT_TEST_PG ? false
  : 'no PostgreSQL server: run under tests/with-postgres (make check does)');

/** A request through nginx from 127.0.0.5; resolves with {status, headers, body}. */
function request(url, ca, { method = 'GET', headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca, localAddress: CLIENT_ADDR, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('several receiptd behind one nginx upstream', { skip }, () => {
  let ca, caPem, db, front, nginx, nodes, stateDirs, root;

  const nodeArgs = (node, url) => ['--ledger', url, '--server-id', 'files.example', '--node-id', node,
    '--trusted-proxy', '127.0.0.1', '--public-url', front];

  before(async () => {
    ca = makeCA();
    caPem = fs.readFileSync(ca.cert);
    const pair = ca.issue();
    db = pgCreateDatabase('upstream');
    const url = pgUrl(db);
    const port = await freePort();
    front = `https://127.0.0.1:${port}`;
    root = tempDir('receipt-root-');
    stateDirs = { a: path.join(tempDir('receipt-state-'), 'a'), b: path.join(tempDir('receipt-state-'), 'b') };
    // The first node makes the keys; the second gets a copy.
    const first = await startServer({ files, root, stateDir: stateDirs.a, args: nodeArgs('a', url) });
    assert.equal((await first.stop()).code, 0, first.log());
    const exported = spawnSync(RECEIPTD, ['keys', 'export', '--state-dir', stateDirs.a]);
    assert.equal(exported.status, 0, String(exported.stderr));
    const imported = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', stateDirs.b, '-'], { input: exported.stdout });
    assert.equal(imported.status, 0, String(imported.stderr));
    nodes = {
      a: await startServer({ root, stateDir: stateDirs.a, args: nodeArgs('a', url) }),
      b: await startServer({ root, stateDir: stateDirs.b, args: nodeArgs('b', url) }),
    };
    nginx = await startNginx({
      ports: [port],
      servers: `
    upstream receiptd {
        server 127.0.0.1:${nodes.a.port};
        server 127.0.0.1:${nodes.b.port};
        keepalive 32;
    }
    server {
        listen 127.0.0.1:${port} ssl;
        ${tlsServerLines({ cert: pair.chain, key: pair.key })}
        location / {
            proxy_pass http://receiptd;
            ${forwardingLines()}
            proxy_next_upstream error timeout http_502 http_503;
            proxy_cache off;
            gzip off;
        }
    }`,
    });
  });

  after(async () => {
    await nginx?.stop();
    for (const srv of Object.values(nodes || {})) await srv.stop();
    removeOwnTempDirs();
  });

  const query = (sql) => pgQuery(db, sql);

  /** A delivery with a client key through nginx, confirmed through nginx. */
  async function deliverAndConfirm(client, jwks, file = '/fw.bin') {
    const got = await request(`${front}${file}`, caPem, { headers: { 'Receipt-Client-Key': client.header } });
    assert.equal(got.status, 200);
    const { payload: plugin } = await openPlugin(client, jwks, got.headers['receipt-plugin']);
    assert.equal(plugin.client.addr, CLIENT_ADDR);
    assert.equal(plugin.server.confirm, `${front}/_receipt/confirm`);
    // Confirmed once its issuance is in the ledger, as by a device that
    // stores what it downloaded first: each node's writer commits on its own
    // schedule, and a confirmation that reaches the other node before the
    // issuing node has committed makes the row from the ticket alone.
    await waitFor(() => query(`SELECT 1 AS ok FROM deliveries WHERE id = '${plugin.delivery}' AND client_addr <> ''`).length === 1);
    const body = await sealConfirmation(client, jwks, confirmation(plugin));
    const conf = await request(plugin.server.confirm, caPem, {
      method: 'POST', body,
      headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': client.header },
    });
    assert.equal(conf.status, 200, conf.body.toString());
    return { id: plugin.delivery, plugin, receipt: JSON.parse(conf.body).receipt };
  }

  test('deliveries land on both nodes and confirm wherever nginx sends them; one ledger records 127.0.0.5', { timeout: 60000 }, async () => {
    const jwks = await fetchJwks(nodes.a.url);
    assert.deepEqual(await fetchJwks(nodes.b.url), jwks, 'one key set');
    const client = await newClient();
    const done = [];
    for (let i = 0; i < 8; i++) done.push(await deliverAndConfirm(client, jwks));
    for (const d of done) {
      const { payload } = await verifyReceipt(jwks, d.receipt);
      assert.equal(payload.delivery, d.id);
      assert.equal(payload.server.id, 'files.example');
    }
    const rows = query(`SELECT id, status, client_addr, confirm_addr, issued_node, confirmed_node FROM deliveries WHERE id IN (${done.map((d) => `'${d.id}'`).join(',')})`);
    assert.equal(rows.length, done.length);
    for (const r of rows) {
      assert.equal(r.status, 'confirmed');
      assert.equal(r.client_addr, CLIENT_ADDR);
      assert.equal(r.confirm_addr, CLIENT_ADDR);
    }
    // Round robin: both nodes took part, and deliveries issued on one node
    // were confirmed on the other.
    assert.deepEqual([...new Set(rows.flatMap((r) => [r.issued_node, r.confirmed_node]))].sort(), ['a', 'b']);
    assert.ok(rows.some((r) => r.issued_node !== r.confirmed_node), JSON.stringify(rows));
    // Either node's admin API shows any of them, with the client's address.
    for (const srv of Object.values(nodes)) {
      const res = await fetch(`${srv.adminUrl}/api/deliveries/${done[0].id}`, { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
      const d = await res.json();
      assert.equal(d.client_addr, CLIENT_ADDR);
    }
  });

  test('the receipt command fetches and confirms through the upstream with --cacert', async () => {
    const c = await clientDirs();
    const r = await runCli(['fetch', `${front}/fw.bin`, '-o', c.out('fw.bin'), '--json', '--cacert', ca.cert, ...c.args()], { env: NO_CA_ENV });
    assert.equal(r.code, 0, r.stderr);
    const j = parseJsonLine(r.stdout);
    assert.equal(j.status, 'confirmed');
    const file = path.join(c.dir, 'r.json');
    fs.writeFileSync(file, r.stdout);
    const v = await runCli(['verify', file, '--jwks', `${front}/_receipt/jwks.json`, '--cacert', ca.cert], { env: NO_CA_ENV });
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(query(`SELECT status FROM deliveries WHERE id = '${j.delivery}'`), [{ status: 'confirmed' }]);
  });

  test('one node stopped: the other serves, and confirms what the stopped one issued', { timeout: 60000 }, async () => {
    const jwks = await fetchJwks(nodes.a.url);
    const client = await newClient();
    // Deliveries until one was issued by node b, not yet confirmed.
    let pending = null;
    for (let i = 0; i < 6 && !pending; i++) {
      const got = await request(`${front}/fw.bin`, caPem, { headers: { 'Receipt-Client-Key': client.header } });
      const { payload } = await openPlugin(client, jwks, got.headers['receipt-plugin']);
      if (payload.server.node === 'b') pending = payload;
    }
    assert.ok(pending, 'node b issued one of six deliveries');
    assert.equal((await nodes.b.stop()).code, 0);
    for (let i = 0; i < 4; i++) {
      const d = await deliverAndConfirm(client, jwks);
      assert.deepEqual(query(`SELECT issued_node, confirmed_node FROM deliveries WHERE id = '${d.id}'`), [{ issued_node: 'a', confirmed_node: 'a' }]);
    }
    const body = await sealConfirmation(client, jwks, confirmation(pending));
    const conf = await request(pending.server.confirm, caPem, {
      method: 'POST', body, headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': client.header },
    });
    assert.equal(conf.status, 200, conf.body.toString());
    assert.deepEqual(query(`SELECT status, issued_node, confirmed_node, confirm_addr FROM deliveries WHERE id = '${pending.delivery}'`),
      [{ status: 'confirmed', issued_node: 'b', confirmed_node: 'a', confirm_addr: CLIENT_ADDR }]);
  });
});
