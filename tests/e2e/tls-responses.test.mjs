// What receiptd sends over TLS, read off the socket byte by byte: every kind
// of answer on one keep-alive connection (pages, cached and uncached files,
// HEAD, ranges, 304, errors, an empty file), requests pipelined and split
// across TLS records in any way, a client that pipelines many requests and
// reads slowly, and TLS 1.3 session resumption (none for TLS 1.2, none
// across a certificate reload), and a close_notify before every close.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { startServer, tempDir } from './lib/server.mjs';
import { makeCA, installPair, serialHex } from './lib/tls.mjs';

const ELEMENT = '<script src="/_receipt/agent.js" async></script>';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function page(bytes) {
  const head = '<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body><p>';
  const tail = '</p></body></html>';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
}

const FILES = {
  '/p.html': page(1024),
  '/big.html': page(300 * 1024), // past the in-memory cache: sent in parts around the element
  '/s.css': 'p { color: #333 }\n'.repeat(12),
  '/m.bin': crypto.randomBytes(40000),
  '/l.bin': crypto.randomBytes(600000), // past the cache: read from the file
  '/e.txt': '',
};

/** One TLS connection, its HTTP/1.1 responses read in order (Content-Length framing). */
class Conn {
  static open(port, ca, opts = {}) {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca, ...opts }, () => resolve(new Conn(sock)));
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.wake = null;
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  write(data) {
    return new Promise((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }

  async until(ready, ms = 10000) {
    const deadline = Date.now() + ms;
    while (!ready()) {
      if (this.closed) throw new Error(`connection closed with ${this.buf.length} bytes unread`);
      if (Date.now() > deadline) throw new Error(`timed out with ${this.buf.length} bytes unread`);
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
      this.wake = null;
    }
  }

  /** The next response; no body when bodiless (HEAD, 204, 304). */
  async response(bodiless = false) {
    let end = -1;
    await this.until(() => (end = this.buf.indexOf('\r\n\r\n')) >= 0);
    const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = bodiless || status === 204 || status === 304 ? 0 : Number(headers['content-length']);
    assert.ok(Number.isInteger(length), `no Content-Length in ${lines.join(' | ')}`);
    await this.until(() => this.buf.length >= end + 4 + length);
    const body = this.buf.subarray(end + 4, end + 4 + length);
    this.buf = this.buf.subarray(end + 4 + length);
    return { status, headers, body };
  }

  close() {
    this.sock.destroy();
  }
}

const get = (p, extra = '') => `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

/** The stored bytes of a path, as a served page carries them (its element taken out). */
function assertBody(file, res) {
  const stored = Buffer.from(FILES[file]);
  assert.equal(res.status, 200, `${file}: ${res.status} ${res.body}`);
  assert.equal(Number(res.headers['content-length']), res.body.length, file);
  if (file.endsWith('.html')) {
    const text = res.body.toString('latin1');
    assert.equal(text.split(ELEMENT).length, 2, `${file} carries the agent element once`);
    assert.ok(Buffer.from(text.replace(ELEMENT, ''), 'latin1').equals(stored), `${file}: the page's bytes`);
  } else {
    assert.ok(res.body.equals(stored), `${file}: ${res.body.length} bytes that differ from the ${stored.length} stored`);
  }
  assert.notEqual(res.headers.connection, 'close', file);
}

describe('responses over TLS', () => {
  let ca, srv, dir, certFile, keyFile, caPem;

  before(async () => {
    ca = makeCA();
    caPem = fs.readFileSync(ca.cert);
    dir = tempDir('receipt-tls-io-');
    certFile = path.join(dir, 'cert.pem');
    keyFile = path.join(dir, 'key.pem');
    installPair(ca.issue(), certFile, keyFile);
    srv = await startServer({ https: true, files: FILES, args: ['--tls-cert', certFile, '--tls-key', keyFile, '--log-level', 'info'] });
  });

  after(async () => {
    await srv?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('one keep-alive connection: every kind of answer, to the byte', async () => {
    const c = await Conn.open(srv.port, caPem);
    try {
      for (const f of ['/s.css', '/p.html', '/m.bin', '/l.bin', '/big.html', '/p.html', '/s.css']) {
        await c.write(get(f));
        assertBody(f, await c.response());
      }
      await c.write(`HEAD /m.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      const head = await c.response(true);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '40000');

      await c.write(get('/m.bin', 'Range: bytes=100-4099\r\n'));
      const part = await c.response();
      assert.equal(part.status, 206);
      assert.equal(part.headers['content-range'], 'bytes 100-4099/40000');
      assert.ok(part.body.equals(FILES['/m.bin'].subarray(100, 4100)));

      await c.write(get('/l.bin', 'Range: bytes=599990-\r\n'));
      const tail = await c.response();
      assert.equal(tail.status, 206);
      assert.ok(tail.body.equals(FILES['/l.bin'].subarray(599990)));

      await c.write(get('/m.bin', 'Range: bytes=50000-\r\n'));
      const unsatisfiable = await c.response();
      assert.equal(unsatisfiable.status, 416);
      assert.equal(JSON.parse(unsatisfiable.body).error, 'range_not_satisfiable');

      const etag = (await (async () => {
        await c.write(get('/s.css'));
        return c.response();
      })()).headers.etag;
      assert.ok(etag);
      await c.write(get('/s.css', `If-None-Match: ${etag}\r\n`));
      assert.equal((await c.response()).status, 304);

      await c.write(get('/e.txt'));
      const empty = await c.response();
      assert.equal(empty.status, 200);
      assert.equal(empty.body.length, 0);

      await c.write(get('/none.html'));
      const missing = await c.response();
      assert.equal(missing.status, 404);
      assert.equal(JSON.parse(missing.body).error, 'not_found');

      await c.write(get('/_receipt/jwks.json'));
      const jwks = await c.response();
      assert.equal(jwks.status, 200);
      assert.ok(Array.isArray(JSON.parse(jwks.body).keys));

      // The same connection still serves, after all of them.
      await c.write(get('/p.html'));
      assertBody('/p.html', await c.response());
    } finally {
      c.close();
    }
  });

  test('pipelined requests, in one record or split across many', async () => {
    const order = ['/p.html', '/s.css', '/m.bin', '/e.txt', '/p.html', '/l.bin', '/s.css', '/big.html', '/p.html'];
    const all = order.map((f) => get(f)).join('');
    for (const split of ['one write', 'every 7 bytes', 'byte by byte over the first two']) {
      const c = await Conn.open(srv.port, caPem);
      try {
        if (split === 'one write') {
          await c.write(all);
        } else {
          const step = split === 'every 7 bytes' ? 7 : 1;
          const cut = split === 'every 7 bytes' ? all.length : get(order[0]).length + get(order[1]).length;
          // Each write becomes a record of its own: the server sees headers
          // cut anywhere, and several requests in the records after.
          for (let at = 0; at < cut; at += step) {
            await c.write(all.slice(at, Math.min(at + step, cut)));
            if (at % 64 === 0) await sleep(1);
          }
          await c.write(all.slice(cut));
        }
        for (const f of order) {
          const res = await c.response();
          if (f === '/e.txt') assert.equal(res.body.length, 0, split);
          else assertBody(f, res);
        }
      } finally {
        c.close();
      }
    }
  });

  test('a client that pipelines many requests and reads slowly gets every byte', { timeout: 60000 }, async () => {
    const c = await Conn.open(srv.port, caPem);
    let done = false;
    try {
      const order = [];
      for (let i = 0; i < 16; i++) order.push('/l.bin', '/p.html', '/m.bin', '/s.css', '/p.html');
      c.sock.pause();
      await c.write(order.map((f) => get(f)).join(''));
      // The server fills the socket and waits for room again and again,
      // with responses cut anywhere (tests/unit/test_tls_io.c makes a
      // joined header and body meet a full socket at will).
      await sleep(300);
      const trickle = (async () => {
        while (!done) {
          c.sock.resume();
          await sleep(1);
          c.sock.pause();
          await sleep(4);
        }
        c.sock.resume();
      })();
      for (const f of order) assertBody(f, await c.response());
      done = true;
      await trickle;
    } finally {
      done = true;
      c.close();
    }
  });

  test('a connection the server closes ends with close_notify, not a bare TCP close', () => {
    // OpenSSL's client exits 1 ("unexpected eof while reading") when the
    // stream ends without the alert: a truncation it cannot tell from the
    // end. HTTP/1.0 without a length is where the close ends the body.
    for (const request of ['GET /p.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /s.css HTTP/1.0\r\n\r\n']) {
      const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', ca.cert,
        '-quiet', '-ign_eof'], { input: request, encoding: 'latin1', timeout: 10000 });
      assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r\n/, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected eof/, request);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  test('TLS 1.3 resumes a session with its ticket; TLS 1.2 does a full handshake', async () => {
    const ticketOf = (opts) => new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: srv.port, ca: caPem, ...opts });
      sock.once('session', (s) => {
        resolve({ session: s, serial: sock.getPeerCertificate().serialNumber });
        sock.destroy();
      });
      sock.once('secureConnect', () => sock.write(get('/s.css')));
      sock.once('error', reject);
      setTimeout(() => reject(new Error('no session ticket')), 5000);
    });
    const resume = async (session, opts = {}) => {
      const c = await Conn.open(srv.port, caPem, { session, ...opts });
      try {
        await c.write(get('/p.html'));
        assertBody('/p.html', await c.response());
        return { reused: c.sock.isSessionReused(), serial: c.sock.getPeerCertificate().serialNumber, protocol: c.sock.getProtocol() };
      } finally {
        c.close();
      }
    };

    const first = await ticketOf({});
    const again = await resume(first.session);
    assert.deepEqual([again.reused, again.protocol], [true, 'TLSv1.3']);

    const old = await new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: srv.port, ca: caPem, maxVersion: 'TLSv1.2' }, () => {
        const s = sock.getSession();
        sock.destroy();
        resolve(s);
      });
      sock.once('error', reject);
    });
    const v12 = await resume(old, { maxVersion: 'TLSv1.2' });
    assert.deepEqual([v12.reused, v12.protocol], [false, 'TLSv1.2']);

    // A new pair comes with a new ticket key: the old tickets no longer
    // resume, and the new certificate is what the client sees.
    const next = ca.issue();
    installPair(next, certFile, keyFile);
    srv.proc.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while (!srv.log().includes(`(serial ${serialHex(next.serial)},`)) {
      assert.ok(Date.now() < deadline, srv.log());
      await sleep(20);
    }
    const after = await resume(first.session);
    assert.equal(after.reused, false);
    assert.equal(after.serial, serialHex(next.serial));
    const fresh = await ticketOf({});
    assert.equal((await resume(fresh.session)).reused, true);
  });
});
