// A ledger that cannot commit: deliveries get 503 once the queue is full,
// confirmations get 503 within a bound, nothing answered 200 is lost, and
// the server recovers when the ledger does. Another connection holds a lock
// every writer waits for (SQLite: the write lock; PostgreSQL: an EXCLUSIVE
// table lock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, postConfirm } from './lib/client.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A delivery to a device, its row written: something to confirm later.
async function deliverToDevice(srv) {
  const jwks = await fetchJwks(srv.url);
  const client = await newClient();
  const res = await fetch(srv.url + '/b.bin', { headers: { 'Receipt-Client-Key': client.header } });
  await res.arrayBuffer();
  const { payload } = await openPlugin(client, jwks, res.headers.get('receipt-plugin'));
  await srv.until(() => srv.query(`SELECT id FROM deliveries WHERE id='${payload.delivery}'`).length);
  return { jwks, client, payload };
}

test('a locked ledger: 503 with Retry-After, bounded waits, nothing lost', { timeout: 60000 }, async () => {
  const srv = await startServer({ files: { 'a.txt': 'hello', 'b.bin': 'bytes' }, args: ['--queue', '16'] });
  // a delivery to confirm later, while the ledger still works
  const { jwks, client, payload } = await deliverToDevice(srv);

  const lock = srv.lockLedger();
  await lock.locked;

  const delivered = [];
  let refused = null;
  for (let i = 0; i < 200 && !refused; i++) {
    const res = await fetch(srv.url + '/a.txt');
    const body = await res.text();
    if (res.status === 200) {
      delivered.push(res.headers.get('receipt-delivery'));
    } else {
      refused = { status: res.status, retry: res.headers.get('retry-after'), body: JSON.parse(body), id: res.headers.get('receipt-delivery') };
    }
  }
  assert.ok(refused, 'the bounded queue filled up');
  assert.equal(refused.status, 503);
  assert.equal(refused.retry, '1');
  assert.equal(refused.body.error, 'ledger_busy');
  assert.equal(refused.id, null, 'a refused request is no delivery');
  assert.ok(delivered.length >= 10 && delivered.length <= 40, `${delivered.length} deliveries queued`);

  const started = Date.now();
  const out = await postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
  const waited = Date.now() - started;
  assert.equal(out.status, 503, out.text);
  assert.ok(['ledger_busy', 'ledger_unavailable'].includes(out.json.error));
  assert.ok(waited < 20000, `answered within the bound (${waited} ms)`);

  await lock.release();
  const rows = await srv.until(() => {
    const have = new Set(srv.query('SELECT id FROM deliveries').map((r) => r.id));
    return delivered.every((id) => have.has(id)) && have;
  }, 15000);
  assert.ok(rows, `every delivery answered 200 has its row once the ledger recovers\n${srv.log()}`);

  const retry = await postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
  assert.equal(retry.status, 200, 'the client retry succeeds');
  assert.equal(retry.json.status, 'confirmed');
  const after = await fetch(srv.url + '/a.txt');
  assert.equal(after.status, 200);
  await after.text();
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a confirmation the ledger cannot commit is answered 503 within the bound', { timeout: 60000 }, async () => {
  const srv = await startServer({ files: { 'b.bin': 'bytes' } });
  const { jwks, client, payload } = await deliverToDevice(srv);

  const lock = srv.lockLedger();
  await lock.locked;
  const started = Date.now();
  const out = await postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
  const waited = Date.now() - started;
  assert.equal(out.status, 503, out.text);
  assert.equal(out.json.error, 'ledger_unavailable');
  assert.ok(waited < 15000, `answered within the bound (${waited} ms)`);
  const [row] = srv.query(`SELECT status FROM deliveries WHERE id='${payload.delivery}'`);
  assert.equal(row.status, 'bound', 'nothing was recorded');

  await lock.release();
  // 503 until the writer's next attempt commits what it holds: retry as told.
  let retry;
  for (let i = 0; i < 20; i++) {
    retry = await postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
    if (retry.status !== 503) break;
    await sleep(Number(retry.headers.get('retry-after')) * 1000);
  }
  assert.equal(retry.status, 200, retry.text);
  assert.equal(retry.json.status, 'confirmed');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('SIGTERM while a confirmation waits for a locked ledger: 503, clean exit', { timeout: 60000 }, async () => {
  const srv = await startServer({ files: { 'b.bin': 'bytes' }, args: ['--shutdown-grace', '0'] });
  const { jwks, client, payload } = await deliverToDevice(srv);

  const lock = srv.lockLedger();
  await lock.locked;
  const pending = postConfirm(payload.server.confirm, client, await sealConfirmation(client, jwks, confirmation(payload)));
  await sleep(300); // the confirmation is now suspended, waiting for the writer
  const exit = srv.stop('SIGTERM');
  const out = await pending;
  assert.equal(out.status, 503, out.text);
  await lock.release();
  const { code } = await exit;
  assert.equal(code, 0, srv.log());
});
