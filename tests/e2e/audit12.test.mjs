// The edges of --redirect-http, --trusted-proxy and --config, as a hostile
// client or a careful operator meets them: a plain HTTP request to the
// HTTPS port; request targets no URL may carry literally, absolute-form
// targets and long ones; RFC 7239 Forwarded and X-Forwarded-For in the
// shapes proxies send them (quoted IPv6 with a port, unknown and obfuscated
// nodes, several header lines, lists, mixed case, trusted IPv6 networks in
// the chain) and the malformed ones, each checked against the access log
// and the forwarded-headers counter; values with spaces in a configuration
// file, one that starts with a byte order mark, and the shipped sample,
// which names nothing to serve; behind nginx, garbage or a long list a
// client puts in X-Forwarded-For does not make nginx the client.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startServer, runReceiptd, freePort, tempDir, rawRequest, statusOf, repoRoot } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';
import { startNginx, nginxMissing, tlsServerLines, forwardingLines } from './lib/nginx.mjs';

const dirs = [];
function dir(prefix) {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

function locationOf(raw) {
  const m = /\r\nLocation: ([^\r\n]*)\r\n/i.exec(raw);
  return m ? m[1] : null;
}

describe('--redirect-http: what comes back in Location; plain HTTP on the HTTPS port', () => {
  let srv, redirectPort, ca;

  before(async () => {
    const authority = makeCA();
    ca = fs.readFileSync(authority.cert);
    const pair = authority.issue();
    redirectPort = await freePort();
    srv = await startServer({
      https: true,
      files: { '/a.html': '<p>a</p>' },
      args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--redirect-http', `127.0.0.1:${redirectPort}`],
    });
  });

  after(async () => {
    await srv?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const get = (target, method = 'GET') =>
    rawRequest(redirectPort, Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, 'latin1'));

  test('a plain HTTP request to the HTTPS port gets a 400 that says so, not a closed connection', async () => {
    const raw = await rawRequest(srv.port, 'GET /a.html HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(statusOf(raw), 400);
    assert.match(raw, /\r\nConnection: close\r\n/);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, 'plain_http');
    assert.match(body.message, /https:\/\//);
    // TLS on the same port is unchanged.
    const res = await new Promise((resolve, reject) => {
      https.get(`${srv.url}/a.html`, { ca, agent: false }, (r) => {
        r.resume();
        r.on('end', () => resolve(r));
      }).on('error', reject);
    });
    assert.equal(res.statusCode, 200);
  });

  test('bytes a URL cannot hold are percent-encoded; the client\'s own escapes and query are kept', async () => {
    const cases = [
      ['/a b?q=c d', '/a%20b?q=c%20d'],
      ['/\x01\x7f"<>\\', '/%01%7F%22%3C%3E%5C'],
      ['/caf\xe9', '/caf%E9'],
      ['/p?x=%41&y=1', '/p?x=%41&y=1'],
    ];
    for (const [target, want] of cases) {
      const raw = await get(target);
      assert.equal(statusOf(raw), 308, JSON.stringify(target));
      assert.equal(locationOf(raw), `${srv.url}${want}`, JSON.stringify(target));
    }
  });

  test('an absolute-form target keeps its path and query, whatever its scheme and host', async () => {
    const cases = [
      ['http://evil.example/x?y=1', '/x?y=1'],
      ['HTTPS://evil.example/x', '/x'],
      ['http://evil.example?q=1', '/?q=1'],
      ['http://evil.example', '/'],
    ];
    for (const [target, want] of cases) {
      const raw = await get(target);
      assert.equal(statusOf(raw), 308, target);
      assert.equal(locationOf(raw), `${srv.url}${want}`, target);
    }
  });

  test('a target just under the limit is redirected, even when every byte needs encoding; past it, 414', async () => {
    let raw = await get(`/${'\xff'.repeat(4000)}`);
    assert.equal(statusOf(raw), 308);
    assert.equal(locationOf(raw), `${srv.url}/${'%FF'.repeat(4000)}`);
    raw = await get(`/${'a'.repeat(4090)}`, 'HEAD');
    assert.equal(statusOf(raw), 308);
    assert.equal(locationOf(raw), `${srv.url}/${'a'.repeat(4090)}`);
    assert.equal(statusOf(await get(`/${'a'.repeat(5000)}`)), 414);
  });
});

describe('--trusted-proxy: Forwarded and X-Forwarded-For as proxies send them', () => {
  let srv, accessLog;

  before(async () => {
    accessLog = path.join(dir('receipt-log-'), 'access.log');
    srv = await startServer({
      files: { '/doc.bin': 'x'.repeat(100) },
      args: ['--trusted-proxy', '127.0.0.1', '--trusted-proxy', '10.0.0.0/8',
        '--trusted-proxy', '2001:db8:ff::/48', '--access-log', accessLog],
    });
  });

  after(async () => {
    await srv?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  async function counters() {
    const res = await fetch(`${srv.adminUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
    const out = {};
    for (const m of (await res.text()).matchAll(/^receiptd_forwarded_headers_total\{outcome="(\w+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
    return out;
  }

  // [headers, the client the access log must name, the outcome counted]
  const PEER = '127.0.0.1';
  const cases = [
    [[['X-Forwarded-For', '203.0.113.7']], '203.0.113.7', 'used'],
    [[['X-Forwarded-For', '  198.51.100.1 ,  203.0.113.8  ']], '203.0.113.8', 'used'],
    [[['X-Forwarded-For', '198.51.100.2'], ['X-Forwarded-For', '203.0.113.9, 10.1.2.3']], '203.0.113.9', 'used'],
    [[['X-Forwarded-For', '203.0.113.10, 198.51.100.3, 10.9.9.9']], '198.51.100.3', 'used'],
    [[['X-Forwarded-For', '203.0.113.13, 2001:db8:ff::1']], '203.0.113.13', 'used'],
    [[['X-Forwarded-For', '::ffff:203.0.113.12']], '203.0.113.12', 'used'],
    [[['Forwarded', 'for="[2001:db8::1]:4711"']], '2001:db8::1', 'used'],
    [[['Forwarded', 'for="[2001:db8:ff::2]", for=203.0.113.20']], '203.0.113.20', 'used'],
    [[['Forwarded', 'for=198.51.100.4'], ['Forwarded', 'for=203.0.113.22;proto=https']], '203.0.113.22', 'used'],
    [[['Forwarded', 'For=203.0.113.23;PROTO=https;By=10.0.0.1']], '203.0.113.23', 'used'],
    [[['Forwarded', 'for=203.0.113.24, for=10.0.0.9']], '203.0.113.24', 'used'],
    [[['Forwarded', 'for=203.0.113.25'], ['X-Forwarded-For', '198.51.100.5']], '203.0.113.25', 'used'],
    [[['Forwarded', 'for="203.0.113.36:_port1"']], '203.0.113.36', 'used'],
    // unknown and obfuscated nodes end the walk: the peer is the client.
    [[['Forwarded', 'for=unknown']], PEER, 'used'],
    [[['Forwarded', 'for=_hidden']], PEER, 'used'],
    [[['Forwarded', 'for=203.0.113.21, for=_hidden']], PEER, 'used'],
    // Malformed: ignored, counted, and X-Forwarded-For is not read instead.
    [[['Forwarded', 'for=[2001:db8::3]'], ['X-Forwarded-For', '198.51.100.6']], PEER, 'malformed'],
    [[['Forwarded', 'for=203.0.113.26;for=203.0.113.27']], PEER, 'malformed'],
    [[['Forwarded', 'for="203.0.113.28']], PEER, 'malformed'],
    [[['Forwarded', 'for=300.1.1.1']], PEER, 'malformed'],
    [[['Forwarded', 'for = 203.0.113.32']], PEER, 'malformed'],
    [[['X-Forwarded-For', 'nonsense']], PEER, 'malformed'],
  ];

  test('the client each names, in the access log, and how each is counted', async () => {
    for (const [i, [headers, want, outcome]] of cases.entries()) {
      const before = await counters();
      const lines = headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const raw = await rawRequest(srv.port, `GET /doc.bin?case=${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${lines}\r\n`);
      assert.equal(statusOf(raw), 200, `case ${i}`);
      const line = await srv.until(() => fs.readFileSync(accessLog, 'utf8').split('\n').find((l) => l.includes(`?case=${i} `)));
      assert.equal(line?.split(' ')[0], want, `case ${i}: ${JSON.stringify(headers)}: ${line}`);
      const after = await counters();
      for (const k of ['used', 'untrusted', 'malformed']) {
        assert.equal(after[k], before[k] + (k === outcome ? 1 : 0), `case ${i} ${k}: ${JSON.stringify(headers)}`);
      }
    }
  });

  test('from a peer outside every trusted network, the same headers are ignored and counted', async () => {
    const before = await counters();
    const raw = await rawRequest(srv.port,
      'GET /doc.bin?case=stranger HTTP/1.1\r\nHost: x\r\nConnection: close\r\nForwarded: for="[2001:db8::1]:4711"\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n',
      5000, '127.0.0.6');
    assert.equal(statusOf(raw), 200);
    const line = await srv.until(() => fs.readFileSync(accessLog, 'utf8').split('\n').find((l) => l.includes('?case=stranger ')));
    assert.ok(line?.startsWith('127.0.0.6 '), line);
    const after = await counters();
    assert.equal(after.untrusted, before.untrusted + 1);
    assert.equal(after.used, before.used);
  });
});

describe('--config: values with spaces, a byte order mark', () => {
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test('a value is the rest of its line as written, spaces and a # included', async () => {
    const root = dir('receipt-root-');
    fs.writeFileSync(path.join(root, 'a.txt'), 'hello\n');
    const conf = path.join(dir('receipt-conf-'), 'receiptd.conf');
    fs.writeFileSync(conf, `root ${root}\nadd-header Content-Security-Policy: default-src 'self'; img-src *\nadd-header X-Note:   a # b\n`);
    const srv = await startServer({ root, args: ['--config', conf] });
    try {
      const res = await fetch(`${srv.url}/a.txt`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-security-policy'), "default-src 'self'; img-src *");
      assert.equal(res.headers.get('x-note'), 'a # b');
    } finally {
      await srv.stop();
    }
    // A byte order mark, as some editors write, is not part of the first name.
    fs.writeFileSync(conf, `\ufeffroot ${root}\nstate-dir ${path.join(dir('receipt-state-'), 'state')}\n`);
    const bom = await runReceiptd(['--config', conf, '--check']);
    assert.equal(bom.code, 0, bom.stderr);
    // The shipped sample names nothing to serve: the error says where to.
    const sample = await runReceiptd(['--config', path.join(repoRoot, 'dist', 'receiptd.conf'), '--check']);
    assert.equal(sample.code, 2);
    assert.match(sample.stderr, /is required: .*dist\/receiptd\.conf gives none \(a line 'root DIR', say\)/);
    // Quotes are not taken away: a quoted header name is not a name.
    fs.writeFileSync(conf, `root ${root}\nadd-header "X-A: b"\n`);
    const r = await runReceiptd(['--config', conf, '--check']);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.startsWith(`receiptd: ${conf}:2: add-header`), r.stderr);
  });
});

describe('behind nginx (recipe 2): what a client writes in X-Forwarded-For', { skip: nginxMissing() || false }, () => {
  let srv, nginx, front, ca0;
  const CLIENT = '127.0.0.5';

  before(async () => {
    const ca = makeCA();
    const pair = ca.issue();
    ca0 = fs.readFileSync(ca.cert);
    const port = await freePort();
    front = `https://127.0.0.1:${port}`;
    srv = await startServer({
      files: { '/doc.bin': 'y'.repeat(100) },
      args: ['--trusted-proxy', '127.0.0.1', '--trusted-proxy', '::1', '--public-url', front],
    });
    nginx = await startNginx({
      ports: [port],
      servers: `
    server {
        listen 127.0.0.1:${port} ssl;
        ${tlsServerLines({ cert: pair.chain, key: pair.key })}
        location / {
            proxy_pass http://127.0.0.1:${srv.port};
            ${forwardingLines()}
        }
    }`,
    });
  });

  after(async () => {
    await nginx?.stop();
    await srv?.stop();
  });

  function get(headers) {
    return new Promise((resolve, reject) => {
      https.get(`${front}/doc.bin`, { localAddress: CLIENT, ca: ca0, agent: false, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      }).on('error', reject);
    });
  }

  test('garbage or a long list before nginx\'s own entry does not make nginx the client', async () => {
    const claims = [
      'junk',
      '"[::1',
      Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`).join(', '),
      '203.0.113.9,,',
    ];
    for (const claim of claims) {
      const res = await get({ 'X-Forwarded-For': claim });
      assert.equal(res.statusCode, 200, claim);
      const id = res.headers['receipt-delivery'];
      const row = await srv.until(() => srv.query(`SELECT client_addr FROM deliveries WHERE id = '${id}'`)[0]);
      assert.deepEqual(row, { client_addr: CLIENT }, claim);
    }
  });
});
