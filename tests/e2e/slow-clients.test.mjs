// Slow clients are bounded: headers must be complete within --header-timeout
// and bodies must keep --min-body-rate, however slowly they trickle; and
// idle keep-alive connections make room when the connection limit is near.
// Attackers outnumber the connection limit; a normal client must still be
// served soon after the header timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { startServer, freePort } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A client that sends `head`, then one more piece every `everyMs`, until
// the server closes the connection; resolves with the time it took.
// With `tls` (options of tls.connect), it trickles over TLS once the
// handshake is done; `localAddress` is the address it connects from.
function trickler(port, head, piece, everyMs, { localAddress, tls: tlsOpts } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const where = { port, host: '127.0.0.1', localAddress };
    const sock = tlsOpts ? tls.connect({ ...where, ...tlsOpts }) : net.connect(where);
    let timer = null;
    let answered = '';
    const end = () => {
      clearInterval(timer);
      sock.destroy();
      resolve({ ms: Date.now() - started, answered });
    };
    sock.on(tlsOpts ? 'secureConnect' : 'connect', () => {
      sock.write(head);
      timer = setInterval(() => sock.write(piece), everyMs);
    });
    sock.on('data', (d) => (answered += d.toString('latin1')));
    sock.on('end', end);
    sock.on('error', end);
    sock.on('close', end);
  });
}

// The sums of a listener's guard report lines in the log.
function guardReports(log, name) {
  const sum = { headers: 0, bodies: 0, idle: 0, refused: 0 };
  const re = new RegExp(`${name}: closed (\\d+) connections with late headers, (\\d+) with too slow a body, ` +
    '(\\d+) idle ones to make room, and refused (\\d+) over the per-address limit \\(\\d+\\)', 'g');
  for (const m of log.matchAll(re)) {
    sum.headers += Number(m[1]);
    sum.bodies += Number(m[2]);
    sum.idle += Number(m[3]);
    sum.refused += Number(m[4]);
  }
  return sum;
}

// GET /metrics of the admin listener (over TLS when ca is given).
function adminMetrics(srv, ca) {
  return new Promise((resolve, reject) => {
    (ca ? https : http).get(`${srv.adminUrl}/metrics`, { ca, agent: false }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

// A keep-alive connection that makes one request, reads the answer, and
// stays open; resolves once answered, with a promise of its closing.
function idleClient(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let closedBy = null;
    const closed = new Promise((r) => (closedBy = r));
    sock.on('data', (d) => {
      text += d.toString('latin1');
      if (/\r\n\r\nhello$/.test(text)) resolve({ sock, closed });
    });
    sock.on('error', () => closedBy(true));
    sock.on('close', () => closedBy(true));
    sock.on('connect', () => sock.write('GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n'));
    setTimeout(() => reject(new Error(`no answer: ${text}`)), 10000);
  });
}

test('slow headers and slow bodies above the connection limit: a normal client is served',
  { timeout: 60000 }, async (t) => {
    const headerTimeout = 2000;
    const srv = await startServer({
      files: { 'a.txt': 'hello' },
      args: ['--max-connections', '40', '--threads', '2', '--header-timeout', '2',
        '--min-body-rate', '100', '--idle-timeout', '30', '--log-level', 'warn'],
    });
    t.after(() => srv.kill()); // also when an assertion fails
    const before = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    const started = Date.now();
    const attackers = [];
    for (let i = 0; i < 30; i++) {
      // one header line every 500 ms: every byte resets an idle timeout
      attackers.push(trickler(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n', 500));
      // a confirmation body at 2 bytes a second
      attackers.push(trickler(srv.port,
        'POST /_receipt/confirm HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\n' +
        'Content-Length: 16000\r\n\r\n', 'x', 500));
    }
    await sleep(300); // the attackers hold every slot; the rest wait in the backlog
    const res = await fetch(srv.url + '/a.txt');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello');
    const servedAfter = Date.now() - started;
    assert.ok(servedAfter <= headerTimeout + 2000,
      `served ${servedAfter} ms after the attack began (header timeout ${headerTimeout} ms)`);

    const ends = await Promise.all(attackers);
    for (const e of ends) {
      assert.equal(e.answered, '', 'an attacker gets no answer');
      assert.ok(e.ms < headerTimeout * 3 + 2000, `an attacker held on ${e.ms} ms`);
    }
    const metrics = await (await fetch(srv.adminUrl + '/metrics')).text();
    const closed = (reason) => Number(new RegExp(
      `^receiptd_http_connections_closed_total\\{listener="public",reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)[1]);
    assert.ok(closed('slow_headers') >= 30, metrics);
    assert.ok(closed('slow_body') >= 30, metrics);
    const log = srv.log();
    assert.match(log, /closed \d+ connections with late headers, \d+ with too slow a body/);
    const reports = log.split('\n').filter((l) => l.includes('connections with late headers')).length;
    assert.ok(reports <= (Date.now() - started) / 1000 + 2, `${reports} report lines`);
    // Nothing of the attackers was recorded: only the normal client's delivery.
    await srv.until(() => srv.query('SELECT count(*) AS n FROM deliveries')[0].n > before);
    assert.equal(srv.query('SELECT count(*) AS n FROM deliveries')[0].n, before + 1);
    assert.equal((await srv.stop()).code, 0, srv.log());
  });

test('a keep-alive request trickled after an idle spell is bounded too', { timeout: 30000 }, async (t) => {
  const srv = await startServer({
    files: { 'a.txt': 'hello' },
    args: ['--header-timeout', '1', '--idle-timeout', '2'],
  });
  t.after(() => srv.kill()); // also when an assertion fails
  const { sock, closed } = await idleClient(srv.port);
  const started = Date.now();
  // The next request line, one byte every 500 ms: the idle timeout never fires.
  const line = 'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n';
  let i = 0;
  const timer = setInterval(() => { if (i < line.length) sock.write(line[i++]); }, 500);
  await closed;
  clearInterval(timer);
  const held = Date.now() - started;
  assert.ok(held < 2000 + 1000 + 1500, `closed after ${held} ms (idle 2 s + headers 1 s)`);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('near the connection limit, idle keep-alive connections make room', { timeout: 60000 }, async (t) => {
  const srv = await startServer({
    files: { 'a.txt': 'hello' },
    args: ['--max-connections', '20', '--threads', '2', '--idle-timeout', '60'],
  });
  t.after(() => srv.kill()); // also when an assertion fails
  const idle = [];
  for (let i = 0; i < 20; i++) idle.push(await idleClient(srv.port));
  // Every slot holds an idle keep-alive connection; the idle timeout is a minute away.
  const started = Date.now();
  const res = await fetch(srv.url + '/a.txt', { headers: { Connection: 'close' } });
  assert.equal(res.status, 200);
  await res.text();
  const waited = Date.now() - started;
  assert.ok(waited < 2000, `a new client waited ${waited} ms`);
  const closedSoon = await Promise.race([
    Promise.any(idle.map((c) => c.closed)).then(() => true),
    sleep(1000).then(() => false),
  ]);
  assert.ok(closedSoon, 'an idle connection was closed to make room');
  // The watchdog's report reaches the log (a pipe) a moment later.
  assert.ok(await srv.until(() => /\d+ idle ones to make room/.test(srv.log()), 3000), srv.log());
  const metrics = await (await fetch(srv.adminUrl + '/metrics')).text();
  assert.match(metrics, /^receiptd_http_connections_closed_total\{listener="public",reason="idle_for_room"\} [1-9]/m);
  for (const c of idle) c.sock.destroy();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// The admin listener: 64 connections at most, 16 of them per client
// address. Clients that trickle their headers from one address are closed
// at --header-timeout (every byte used to reset the 60 s idle timeout, and
// 64 of them shut the operators out); meanwhile an operator elsewhere is
// answered at once.
async function adminUnderSlowClients(srv, { tlsOpts, ca } = {}) {
  const headerTimeout = 2000;
  const started = Date.now();
  const attackers = [];
  for (let i = 0; i < 64; i++)
    attackers.push(trickler(srv.adminPort, 'GET /api/summary HTTP/1.1\r\nHost: x\r\n',
      'X-Slow: 1\r\n', 500, { localAddress: '127.0.0.2', tls: tlsOpts }));
  await sleep(500); // every attacker has connected (or been refused)
  const asked = Date.now();
  const headers = { Authorization: `Bearer ${srv.adminToken()}` };
  const res = await new Promise((resolve, reject) => {
    const req = (tlsOpts ? https : http).get(`${srv.adminUrl}/api/summary`,
      { headers, ca, agent: false, timeout: 10000 }, (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode, body }));
      });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
  });
  const answeredAfter = Date.now() - asked;
  assert.equal(res.status, 200, res.body);
  JSON.parse(res.body);
  assert.ok(Date.now() - started < headerTimeout,
    `answered ${answeredAfter} ms after asking, ${Date.now() - started} ms into the attack`);

  const ends = await Promise.all(attackers);
  const refused = ends.filter((e) => e.ms < headerTimeout - 500).length;
  const held = ends.filter((e) => e.ms >= headerTimeout - 500);
  assert.equal(refused, 64 - 16, 'one address holds 16 admin connections at most');
  for (const e of ends) {
    assert.equal(e.answered, '', 'an attacker gets no answer');
    assert.ok(e.ms < headerTimeout + 3000, `an attacker held on ${e.ms} ms`);
  }
  assert.equal(held.length, 16);
  assert.ok(await srv.until(() => /admin: closed 16 connections with late headers/.test(srv.log()), 3000),
    srv.log());
  assert.equal(guardReports(srv.log(), 'admin').refused, 48);
  const metrics = await adminMetrics(srv, ca);
  assert.match(metrics, /^receiptd_http_connections_closed_total\{listener="admin",reason="slow_headers"\} 16$/m);
  assert.match(metrics, /^receiptd_per_address_limited_total\{listener="admin",kind="connection"\} 48$/m);
  assert.match(metrics, /^receiptd_http_connections_closed_total\{listener="public",reason="slow_headers"\} 0$/m);
}

test('the admin listener: slow headers are closed at --header-timeout, an operator is served',
  { timeout: 60000 }, async (t) => {
    const srv = await startServer({ args: ['--header-timeout', '2', '--log-level', 'warn'] });
    t.after(() => srv.kill()); // also when an assertion fails
    await adminUnderSlowClients(srv);
    assert.equal((await srv.stop()).code, 0, srv.log());
  });

test('the admin listener over TLS (--admin-tls-cert): the same bounds', { timeout: 60000 }, async (t) => {
  const ca = makeCA({ name: 'receipt test admin CA' });
  const pair = ca.issue();
  const srv = await startServer({
    adminHttps: true,
    args: ['--admin-tls-cert', pair.chain, '--admin-tls-key', pair.key, '--header-timeout', '2',
      '--log-level', 'warn'],
  });
  t.after(() => srv.kill()); // also when an assertion fails
  await adminUnderSlowClients(srv, { tlsOpts: { rejectUnauthorized: false }, ca: fs.readFileSync(ca.cert) });
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// The --redirect-http listener: 64 connections per client address unless
// --per-ip-connections sets another number, and headers due within
// --header-timeout. Clients that trickle their headers from one address are
// closed at the header timeout (every byte used to reset the idle timeout),
// those past the cap are refused at once, and a client elsewhere gets its
// 308 meanwhile. Each refusal and closing is counted in /metrics.
test('the redirect listener: slow headers are closed at --header-timeout, one address holds 64 connections',
  { timeout: 60000 }, async (t) => {
    const ca = makeCA();
    const pair = ca.issue();
    const redirectPort = await freePort();
    const srv = await startServer({
      https: true,
      args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--redirect-http', `127.0.0.1:${redirectPort}`,
        '--header-timeout', '2', '--idle-timeout', '30', '--log-level', 'warn'],
    });
    t.after(() => srv.kill()); // also when an assertion fails
    const headerTimeout = 2000;
    const started = Date.now();
    const attackers = [];
    for (let i = 0; i < 72; i++)
      attackers.push(trickler(redirectPort, 'GET /a.txt HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n', 500,
        { localAddress: '127.0.0.2' }));
    await sleep(500); // every attacker has connected (or been refused)
    const res = await new Promise((resolve, reject) => {
      const req = http.get(`http://127.0.0.1:${redirectPort}/a.txt?x=1`, { agent: false, timeout: 10000 }, resolve);
      req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.on('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `${srv.url}/a.txt?x=1`);
    assert.ok(Date.now() - started < headerTimeout, `answered ${Date.now() - started} ms into the attack`);

    const ends = await Promise.all(attackers);
    const refused = ends.filter((e) => e.ms < headerTimeout - 500).length;
    assert.equal(refused, 72 - 64, 'one address holds 64 redirect connections at most');
    for (const e of ends) {
      assert.equal(e.answered, '', 'an attacker gets no answer');
      assert.ok(e.ms < headerTimeout + 3000, `an attacker held on ${e.ms} ms`);
    }
    assert.ok(await srv.until(() => guardReports(srv.log(), 'redirect').headers === 64, 3000), srv.log());
    assert.equal(guardReports(srv.log(), 'redirect').refused, 8);
    const metrics = await adminMetrics(srv);
    assert.match(metrics, /^receiptd_http_connections_closed_total\{listener="redirect",reason="slow_headers"\} 64$/m);
    assert.match(metrics, /^receiptd_per_address_limited_total\{listener="redirect",kind="connection"\} 8$/m);
    // The public listener's counters are its own.
    assert.match(metrics, /^receiptd_http_connections_closed_total\{listener="public",reason="slow_headers"\} 0$/m);
    assert.match(metrics, /^receiptd_per_address_limited_total\{listener="public",kind="connection"\} 0$/m);
    assert.equal((await srv.stop()).code, 0, srv.log());
  });
