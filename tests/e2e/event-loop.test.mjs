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
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from './lib/server.mjs';

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
