// Brute force against the admin token: wrong tokens are counted in
// /metrics, logged once a second with a count and the address, and after a
// few an address is locked out (429 with Retry-After, token not looked at)
// for a time that doubles; other addresses are not affected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// GET /api/summary from a chosen loopback address.
function api(srv, token, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: srv.adminPort, path: '/api/summary', localAddress, agent: false,
      headers: token === null ? {} : { Authorization: `Bearer ${token}` },
    }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, retry: res.headers['retry-after'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(srv, name) {
  const text = await (await fetch(srv.adminUrl + '/metrics')).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

test('admin brute force: counted, logged once a second, slowed per address', { timeout: 60000 }, async (t) => {
  const srv = await startServer({ files: { 'a.txt': 'hello' } });
  t.after(() => srv.kill()); // also when an assertion fails
  const token = srv.adminToken();
  const wrong = 'A'.repeat(43);

  // No token at all is no guess: 401, not counted.
  assert.equal((await api(srv, null)).status, 401);
  // The first ten wrong tokens are answered 401 each.
  for (let i = 0; i < 10; i++) {
    const r = await api(srv, wrong);
    assert.equal(r.status, 401, r.body);
    assert.equal(JSON.parse(r.body).error, 'invalid_token');
  }
  // The eleventh still gets its 401, and locks the address for a second.
  assert.equal((await api(srv, wrong)).status, 401);
  const locked = await api(srv, wrong);
  assert.equal(locked.status, 429, locked.body);
  assert.equal(JSON.parse(locked.body).error, 'too_many_failures');
  assert.equal(locked.retry, '1');
  // The right token waits too: a lockout that answered it would answer guesses.
  assert.equal((await api(srv, token)).status, 429);
  // Another address is not affected.
  assert.equal((await api(srv, token, '127.0.0.2')).status, 200);

  // A brute force for three seconds: only a handful of guesses are looked at.
  let evaluated = 0;
  let throttled = 0;
  const started = Date.now();
  while (Date.now() - started < 3000) {
    const r = await api(srv, wrong);
    if (r.status === 401) evaluated++;
    else if (r.status === 429) throttled++;
    else assert.fail(`unexpected ${r.status}`);
  }
  assert.ok(throttled > 100, `${throttled} answered 429`);
  assert.ok(evaluated <= 3, `${evaluated} guesses looked at in 3 s (lockouts of 1 s, then 2 s, ...)`);

  assert.equal(await metric(srv, 'receiptd_admin_auth_failures_total'), 11 + evaluated);
  assert.equal(await metric(srv, 'receiptd_admin_auth_throttled_total'), 2 + throttled);
  assert.equal(await metric(srv, 'receiptd_admin_auth_addresses'), 1);

  const seconds = (Date.now() - started) / 1000 + 1;
  const lines = srv.log().split('\n').filter((l) => l.includes('failed authentications'));
  assert.ok(lines.length >= 1 && lines.length <= seconds + 2, `${lines.length} log lines in ${seconds} s`);
  assert.match(lines[0], /127\.0\.0\.1/);

  // Once the lockout ends, the right token is accepted and the address forgotten.
  let ok;
  for (let i = 0; i < 20; i++) {
    ok = await api(srv, token);
    if (ok.status !== 429) break;
    await sleep(Number(ok.retry) * 1000);
  }
  assert.equal(ok.status, 200, ok.body);
  assert.equal(await metric(srv, 'receiptd_admin_auth_addresses'), 0);
  assert.equal((await srv.stop()).code, 0, srv.log());
});
