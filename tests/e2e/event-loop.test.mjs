// Every request that arrives is answered, however many arrive at once.
//
// libmicrohttpd's own epoll loop (0.9.75 to 1.0.1) takes at most 128
// events per epoll_wait(), and when it got a full 128 it waits again, for
// more, with the timeout it computed before it had any work (up to the idle
// timeout), before it handles the 128 it holds. When exactly 128 (or 256...)
// connections of one HTTP thread became readable together and nothing else
// happens, they all wait for the idle timeout: the full cycle at 256 clients
// on two threads stalled so. The server drives the loop itself, so that
// each batch is handled as soon as it is read.
//
// The requests are made to arrive together by stopping the server (SIGSTOP)
// while they are sent, and they are then expected long before the idle
// timeout: an answer that came only because the timeout woke the loop would
// come after it.
//
// The --redirect-http and admin listeners run on the same loop: the
// redirect listener's connections wait there for a first request (idle
// timeout 10 s). The admin listener's limit of 64 connections keeps its
// loop below 128 events a turn; its clients queue behind the limit and must
// be taken as the first ones close, without waiting for a timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, startServer } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';

const IDLE_TIMEOUT_S = 60;
const ANSWER_WITHIN_MS = 15000; // a quarter of the idle timeout

// A keep-alive connection that reads whole answers of `body`; request()
// resolves with the next one.
function keepAlive(port, body) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let waiter = null;
    sock.on('data', (d) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (waiter && end >= 0 && text.endsWith(body)) {
        const w = waiter;
        waiter = null;
        text = '';
        w.resolve();
      }
    });
    const fail = (err) => {
      if (waiter) waiter.reject(err);
      waiter = null;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('closed by the server')));
    const conn = {
      sock,
      // Resolves once the request is in the kernel's hands (on loopback:
      // in the server's receive buffer).
      send() {
        return new Promise((res) => sock.write('GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n', res));
      },
      answered() {
        return new Promise((res, rej) => (waiter = { resolve: res, reject: rej }));
      },
    };
    sock.on('connect', () => resolve(conn));
    sock.on('error', reject);
  });
}

for (const count of [128, 256]) {
  test(`${count} requests that arrive at once on one HTTP thread are all answered`,
    { timeout: 60000 }, async () => {
      const body = 'hello';
      const srv = await startServer({
        files: { 'a.txt': body },
        args: ['--threads', '1', '--idle-timeout', String(IDLE_TIMEOUT_S)],
      });
      const conns = [];
      try {
        for (let i = 0; i < count; i++) conns.push(await keepAlive(srv.port, body));
        // Each connection accepted and served once: idle, waiting to read.
        await Promise.all(conns.map((c) => { const a = c.answered(); c.send(); return a; }));
        await new Promise((r) => setTimeout(r, 200)); // the server back in its wait

        srv.proc.kill('SIGSTOP');
        let answers;
        try {
          answers = conns.map((c) => c.answered());
          await Promise.all(conns.map((c) => c.send()));
          await new Promise((r) => setTimeout(r, 200));
        } finally {
          srv.proc.kill('SIGCONT');
        }
        const started = Date.now();
        let timer;
        const late = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not all ${count} answered within ` +
            `${ANSWER_WITHIN_MS} ms (the loop waited with work in hand)`)), ANSWER_WITHIN_MS);
        });
        try {
          await Promise.race([Promise.all(answers), late]);
        } finally {
          clearTimeout(timer);
        }
        assert.ok(Date.now() - started < ANSWER_WITHIN_MS);
      } finally {
        for (const c of conns) c.sock.destroy();
        await srv.stop();
      }
    });
}

const REDIRECT_TIMEOUT_MS = 10000; // the redirect listener's idle timeout (http_redirect.c)

// A connection that sends one request and resolves answered() with the
// whole answer once the server closes it.
function oneShot(port, localAddress = undefined) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    let done;
    const answer = new Promise((res, rej) => (done = { res, rej }));
    sock.on('data', (d) => (text += d.toString('latin1')));
    sock.on('end', () => done.res(text));
    sock.on('error', (err) => done.rej(err));
    sock.on('close', () => done.res(text));
    sock.on('connect', () => resolve({
      sock,
      send(request) {
        return new Promise((res) => sock.write(request, res));
      },
      answered: () => answer,
    }));
    sock.once('error', reject);
  });
}

// Opens count connections, lets the server take them, then makes one
// request on each arrive at once; resolves with the answers, or fails if
// they are not all in within withinMs of the server going on. With
// `addresses`, the connections come from that many loopback addresses in
// turn (127.0.0.2, ...), under a per-address limit.
async function burst(srv, port, count, request, withinMs, addresses = 0) {
  const conns = [];
  try {
    for (let i = 0; i < count; i++)
      conns.push(await oneShot(port, addresses > 0 ? `127.0.0.${2 + (i % addresses)}` : undefined));
    await new Promise((r) => setTimeout(r, 300)); // accepted, each waiting for its request
    srv.proc.kill('SIGSTOP');
    let answers;
    try {
      answers = conns.map((c) => c.answered());
      await Promise.all(conns.map((c) => c.send(request)));
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      srv.proc.kill('SIGCONT');
    }
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not all ${count} answered within ` +
        `${withinMs} ms (the loop waited with work in hand)`)), withinMs);
    });
    try {
      return await Promise.race([Promise.all(answers), late]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    for (const c of conns) c.sock.destroy();
  }
}

test('the --redirect-http listener answers 128 and 256 requests that arrive at once',
  { timeout: 60000 }, async () => {
    const pair = makeCA().issue();
    const redirectPort = await freePort();
    const srv = await startServer({
      https: true,
      files: { 'a.txt': 'hello' },
      args: ['--threads', '1', '--tls-cert', pair.chain, '--tls-key', pair.key,
        '--redirect-http', `127.0.0.1:${redirectPort}`],
    });
    try {
      for (const count of [128, 256]) {
        // Stalled, they would wait for the idle timeout of connections a
        // second old: well after half of it.
        const answers = await burst(srv, redirectPort, count,
          'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n', REDIRECT_TIMEOUT_MS / 2,
          8); // 64 connections per address at most (docs/operations.md)
        for (const a of answers) assert.match(a, /^HTTP\/1\.1 308 /);
      }
    } finally {
      await srv.stop();
    }
  });

test('the admin listener answers 128 and 256 requests that arrive at once',
  { timeout: 60000 }, async () => {
    const srv = await startServer({ files: { 'a.txt': 'hello' } });
    try {
      for (const count of [128, 256]) {
        const answers = await burst(srv, srv.adminPort, count,
          'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', ANSWER_WITHIN_MS,
          32); // 16 connections per address at most (docs/operations.md)
        for (const a of answers) assert.match(a, /^HTTP\/1\.1 200 /);
      }
    } finally {
      await srv.stop();
    }
  });
