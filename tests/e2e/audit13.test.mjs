// receiptd in front of an upstream that a test scripts byte for byte: an
// upstream URL's path joined to the request's by one '/', a streamed answer
// cut by the upstream ending the client's connection at once, lists split
// over several fields (Cache-Control, Connection) read whole, an
// --upstream-ca that cannot serve refused at the start, and failure reports
// whose counts add up to the failures.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startServer, runReceiptd, freePort, tempDir } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fetch metadata of a page's image: no delivery, so the answer streams. */
const SUBRESOURCE = { 'Sec-Fetch-Dest': 'image', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };

/**
 * An upstream on loopback that answers from a script per path, over raw
 * TCP so that what it sends is exactly what the test wrote:
 *   .../target            the request line it received, as text
 *   .../fields            the request's header block, as text
 *   .../cut-chunked       a chunked body that stops after 64 KiB, the socket closed
 *   .../split-cache       an HTML page with Cache-Control in two fields, no-store in the second
 *   .../split-connection  a text whose second Connection field names X-Hop
 */
async function startScripted() {
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4); /* these requests carry no body */
        answer(sock, head);
      }
    });
  });
  const text = (sock, body, fields = '') =>
    sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${fields}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const answer = (sock, head) => {
    const line = head.split('\r\n')[0];
    const target = line.split(' ')[1];
    const p = target.split('?')[0];
    if (p.endsWith('/target')) return text(sock, line);
    if (p.endsWith('/fields')) return text(sock, head);
    if (p.endsWith('/cut-chunked')) {
      sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
      sock.write(`10000\r\n${'c'.repeat(0x10000)}\r\n`);
      sock.end(); /* no last chunk */
      return undefined;
    }
    if (p.endsWith('/split-cache')) {
      const page = '<!DOCTYPE html>\n<html><body><p>private</p></body></html>\n';
      return sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: max-age=60\r\n' +
        `Cache-Control: no-store\r\nContent-Length: ${page.length}\r\n\r\n${page}`);
    }
    if (p.endsWith('/split-connection')) return text(sock, 'ok', 'Connection: keep-alive\r\nConnection: X-Hop\r\nX-Hop: secret\r\nX-Kept: 1\r\n');
    return sock.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  };
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** One request; resolves when the answer ends, whole or cut. */
function request(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks = [];
      const done = (error) => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error });
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done(null));
      res.on('error', (e) => done(e));
      res.on('aborted', () => done(new Error('aborted')));
    });
    req.on('error', reject);
  });
}

async function stopClean(srv) {
  const { code } = await srv.stop();
  assert.equal(code, 0, srv.log());
  assert.doesNotMatch(srv.log(), /runtime error|AddressSanitizer|LeakSanitizer/);
}

describe('upstream: paths, cuts and split fields', () => {
  let up;
  let srv;
  before(async () => {
    up = await startScripted();
    srv = await startServer({
      args: [
        '--upstream', `${up.url}/base`,
        '--upstream-for', '/api', `${up.url}/v1/`,
        '--upstream-for', '/app/', `${up.url}/mounted`,
        '--upstream-for', '/raw/', up.url,
        /* A cut that waited for the idle timeout would outlast the test's. */
        '--idle-timeout', '300',
      ],
    });
  });
  after(async () => {
    if (srv) await stopClean(srv);
    if (up) await up.stop();
  });

  test('the URL\'s path and the rest of the request path are joined by one "/"', async () => {
    const cases = [
      ['/target?q=1&r=%20', '/base/target?q=1&r=%20'],
      ['/a%2Fb/target', '/base/a%2Fb/target'],
      ['/api/target', '/v1/target'],
      ['/api/x/target?y', '/v1/x/target?y'],
      ['/app/deep/target', '/mounted/deep/target'],
      ['/%61pp/enc%20oded/target', '/mounted/enc%20oded/target'],
      ['/raw/target', '/raw/target'],
    ];
    for (const [sent, received] of cases) {
      const res = await request(`${srv.url}${sent}`, SUBRESOURCE);
      assert.equal(res.status, 200, sent);
      assert.equal(res.body.toString(), `GET ${received} HTTP/1.1`, sent);
    }
  });

  test('a streamed answer the upstream cuts mid-body ends the client\'s connection at once, never complete', { timeout: 60000 }, async () => {
    for (let i = 0; i < 20; i++) {
      const res = await request(`${srv.url}/raw/cut-chunked`, SUBRESOURCE);
      if (res.status === 200) {
        assert.equal(res.complete, false, `round ${i}: the cut answer looks complete`);
        assert.ok(res.body.length <= 0x10000, `round ${i}`);
      } else {
        assert.equal(res.status, 502, `round ${i}`);
      }
    }
  });

  test('no-store in a second Cache-Control field stays on a delivery', async () => {
    const res = await request(`${srv.url}/raw/split-cache`, { 'Sec-Fetch-Dest': 'document', 'Sec-Fetch-Mode': 'navigate' });
    assert.equal(res.status, 200);
    assert.ok(res.headers['receipt-delivery'], 'a page view is a delivery');
    assert.equal(res.headers['cache-control'], 'private, no-store');
  });

  test('fields named by a second Connection field stay behind, both ways', async () => {
    const answer = await request(`${srv.url}/raw/split-connection`, SUBRESOURCE);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['x-hop'], undefined);
    assert.equal(answer.headers['x-kept'], '1');

    const raw = await new Promise((resolve, reject) => {
      const sock = net.connect(srv.port, '127.0.0.1');
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
      sock.write('GET /raw/fields HTTP/1.1\r\nHost: a.example\r\nSec-Fetch-Dest: image\r\nSec-Fetch-Mode: no-cors\r\n' +
        'Connection: keep-alive\r\nX-Secret: 1\r\nConnection: X-Secret, close\r\nX-Other: 2\r\n\r\n');
    });
    assert.match(raw, /^HTTP\/1\.1 200 /);
    const fields = raw.slice(raw.indexOf('\r\n\r\n') + 4);
    assert.match(fields, /^X-Other: 2$/m);
    assert.doesNotMatch(fields, /X-Secret/i);
    assert.doesNotMatch(fields, /^Connection:/im);
  });
});

describe('upstream: failures and their reports', () => {
  test('an --upstream-ca that cannot be read or holds no certificate stops the start', async () => {
    const dir = tempDir('receipt-upstream-ca-');
    const notPem = path.join(dir, 'not.pem');
    fs.writeFileSync(notPem, 'no certificate here\n');
    for (const [ca, why] of [[path.join(dir, 'missing.pem'), /No such file/], [notPem, /holds no PEM certificate/]]) {
      const args = ['--upstream', 'https://127.0.0.1:9/', '--upstream-ca', ca, '--state-dir', path.join(dir, 'state'),
        '--listen', `127.0.0.1:${await freePort()}`, '--admin-listen', 'off'];
      for (const extra of [[], ['--check']]) {
        const run = await runReceiptd([...args, ...extra]);
        assert.notEqual(run.code, 0, `${ca} ${extra}: ${run.stdout}${run.stderr}`);
        assert.match(run.stderr, new RegExp(`--upstream-ca ${ca.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
        assert.match(run.stderr, why);
      }
    }
  });

  test('the counts of an upstream\'s failure reports add up to its failures', async () => {
    const down = await freePort(); /* nothing listens there */
    const srv = await startServer({ args: ['--upstream', `http://127.0.0.1:${down}`], logLevel: 'info' });
    try {
      const failures = 15;
      for (let i = 0; i < failures; i++) {
        const res = await request(`${srv.url}/x${i}`, SUBRESOURCE);
        assert.equal(res.status, 502);
        await sleep(100); /* over more than one second */
      }
      const counted = () => srv.log().split('\n')
        .filter((l) => l.includes(`upstream http://127.0.0.1:${down} cannot connect`))
        .reduce((n, l) => n + Number(/; (\d+) failed requests? since the last report$/.exec(l)[1]), 0);
      /* The last report comes once its second is over, with no failure after it. */
      await srv.until(() => counted() >= failures, 5000);
      assert.equal(counted(), failures, srv.log());
    } finally {
      await stopClean(srv);
    }
  });
});
