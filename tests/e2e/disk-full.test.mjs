// A full disk under the state directory, for real: a small tmpfs filled to
// the last byte. Every delivery answered 200 must have its ledger row once
// space is back, whether receiptd kept running or was stopped (SIGTERM)
// while the disk was full; meanwhile deliveries and confirmations get 503,
// and the log stays short.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, postConfirm } from './lib/client.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'mounting a tmpfs needs root (CI runs make check as root)';

// A tmpfs of its own, unmounted (and its mount point removed) after the test.
function mountTmpfs(t, megabytes) {
  const dir = tempDir('receipt-full-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir]);
  t.after(() => {
    try { execFileSync('umount', [dir]); } catch { execFileSync('umount', ['-l', dir]); }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

// Fills the file system to the last page; returns the filler's path.
function fillDisk(dir) {
  const file = path.join(dir, `filler-${Date.now()}`);
  const fd = fs.openSync(file, 'w');
  for (const size of [1 << 20, 1 << 16, 4096, 512]) {
    const chunk = Buffer.alloc(size, 0x55);
    for (;;) {
      try { fs.writeSync(fd, chunk); } catch (e) { if (e.code === 'ENOSPC') break; throw e; }
    }
  }
  fs.closeSync(fd);
  return file;
}

async function metric(srv, name) {
  const text = await (await fetch(srv.adminUrl + '/metrics')).text();
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// GETs from several clients at once until `until` says stop; every 200's ID
// goes into `delivered`, every other answer is counted by status and error.
async function hammer(srv, delivered, until, { clients = 8, timeoutMs = 30000 } = {}) {
  const seen = {};
  const deadline = Date.now() + timeoutMs;
  const worker = async () => {
    while (!until(seen) && Date.now() < deadline) {
      const res = await fetch(srv.url + '/a.txt');
      const body = await res.text();
      if (res.status === 200) {
        delivered.push(res.headers.get('receipt-delivery'));
        continue;
      }
      assert.equal(res.status, 503, body);
      assert.equal(res.headers.get('retry-after'), '1');
      assert.equal(res.headers.get('receipt-delivery'), null, 'a refused request is no delivery');
      const key = JSON.parse(body).error;
      seen[key] = (seen[key] || 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return seen;
}

function missingRows(srv, ids) {
  const have = new Set(srv.query('SELECT id FROM deliveries').map((r) => r.id));
  return ids.filter((id) => !have.has(id));
}

test('a full disk: 503 instead of 200 without a row; every 200 keeps its row, across a SIGTERM too',
  { skip, timeout: 180000 }, async (t) => {
    // Stopped before the tmpfs is unmounted (hooks run in order), also when
    // an assertion fails.
    let srv = null;
    t.after(() => srv?.kill());
    const mnt = mountTmpfs(t, 24);
    const stateDir = path.join(mnt, 'state');
    const args = ['--queue', '512', '--batch', '64', '--shutdown-grace', '2', '--log-level', 'info'];
    const files = { 'a.txt': 'hello', 'b.bin': 'bytes' };
    srv = await startServer({ files, stateDir, args });
    const root = srv.root;
    const delivered = [];

    // A device's delivery, to confirm while the disk is full.
    const jwks = await fetchJwks(srv.url);
    const client = await newClient();
    const res = await fetch(srv.url + '/b.bin', { headers: { 'Receipt-Client-Key': client.header } });
    await res.arrayBuffer();
    const { payload } = await openPlugin(client, jwks, res.headers.get('receipt-plugin'));
    delivered.push(payload.delivery);
    const confirm = async () => postConfirm(payload.server.confirm, client,
      await sealConfirmation(client, jwks, confirmation(payload)));
    assert.ok(await metric(srv, 'receiptd_ledger_recovery_reserved_bytes') > 512 * 400);

    // ---- full while running, then space again ----
    let filler = fillDisk(mnt);
    const fullAt = Date.now();
    let seen = await hammer(srv, delivered, (s) => (s.ledger_unavailable || 0) >= 200);
    assert.ok(seen.ledger_unavailable >= 200, `503s while full: ${JSON.stringify(seen)}\n${srv.log()}`);
    assert.equal(await metric(srv, 'receiptd_ledger_failing'), 1);
    assert.ok(await metric(srv, 'receiptd_ledger_failed_commits_total') > 0);
    assert.ok(await metric(srv, 'receiptd_ledger_refused_total{reason="ledger_failing"}') >= 200);

    const refused = await confirm();
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error, 'ledger_unavailable');

    await sleep(2500); // a few report periods while failing
    const failingFor = (Date.now() - fullAt) / 1000;
    const reports = srv.log().split('\n').filter((l) => l.includes('not committing for')).length;
    assert.ok(reports >= 1 && reports <= failingFor + 2,
      `one report a second at most: ${reports} in ${failingFor} s`);

    fs.unlinkSync(filler);
    // The held events commit at the writer's next attempt (within 1 s).
    const back = await srv.until(async () => (await metric(srv, 'receiptd_ledger_failing')) === 0, 10000);
    assert.ok(back, 'the ledger commits again once there is space');
    assert.deepEqual(missingRows(srv, delivered), [], 'every 200 has its row');
    let confirmed;
    for (let i = 0; i < 10; i++) {
      confirmed = await confirm();
      if (confirmed.status === 200) break;
      await sleep(1000);
    }
    assert.equal(confirmed.status, 200, confirmed.text);
    seen = await hammer(srv, delivered, () => delivered.length > 2000, { clients: 4, timeoutMs: 2000 });
    assert.deepEqual(seen, {}, 'with space, every delivery is answered 200');

    // ---- full again, and SIGTERM while full ----
    filler = fillDisk(mnt);
    seen = await hammer(srv, delivered, (s) => (s.ledger_unavailable || 0) >= 100);
    assert.ok(seen.ledger_unavailable >= 100, JSON.stringify(seen));
    const stopped = await srv.stop('SIGTERM');
    const log = srv.log();
    if (process.env.SHOWLOG) console.log(log);
    assert.equal(stopped.code, 0, log);
    assert.match(log, /saved to the recovery file/);
    assert.doesNotMatch(log, /LOST|lost:/);
    assert.ok(log.split('\n').length < 200, `a short log, not a line per event:\n${log}`);
    assert.ok(fs.statSync(path.join(stateDir, 'ledger-recovery')).size > 0);

    // ---- space again, and a restart: the recovery file goes in first ----
    fs.unlinkSync(filler);
    srv = await startServer({ root, stateDir, args });
    assert.match(srv.log(), /applied \d+ ledger events saved by the last run/);
    assert.ok(await metric(srv, 'receiptd_ledger_recovery_applied_events') > 0);
    assert.deepEqual(missingRows(srv, delivered), [], 'every 200 has its row after the restart');
    const [row] = srv.query(`SELECT status FROM deliveries WHERE id='${payload.delivery}'`);
    assert.equal(row.status, 'confirmed');
    assert.equal((await srv.stop()).code, 0, srv.log());
  });
