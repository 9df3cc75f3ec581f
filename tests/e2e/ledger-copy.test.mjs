// `receiptd ledger copy` on 100,000 rows made directly in a SQLite ledger:
// to PostgreSQL, cut short by SIGKILL and taken up again, verified; back
// into a new SQLite file, verified; a changed row and a foreign destination
// are found; and a receiptd serving the copy answers as the original did.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, RECEIPTD, tempDir, pgCreateDatabase, pgUrl, pgQuery, pgExec } from './lib/server.mjs';

const ROWS = 100000;
const havePg = Boolean(process.env.RECEIPT_TEST_PG);
const skip = havePg ? false : 'no PostgreSQL server: run under tests/with-postgres (make check does)';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ledgerCmd = (...args) => spawnSync(RECEIPTD, ['ledger', ...args], { encoding: 'utf8', timeout: 300000 });

// Rows of every kind: statuses, absent fields, odd paths, 23 months of IDs.
const GENERATE = `
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${ROWS}),
r AS (SELECT n, 1700000000000 + n * 600000 AS t, n % 10 AS k FROM g)
INSERT INTO deliveries (id, path, sha256, size, server, client_addr, user_agent, issued_ms, status,
  client, bound_addr, bound_ms, confirmed_ms, confirm_addr, received_sha256, received_size,
  received_at_ms, receipt)
SELECT printf('%08x-%04x-7%03x-8%03x-%012x', t >> 16, t & 65535, n & 4095, (n >> 12) & 4095, n),
  CASE WHEN n % 9973 = 0 THEN '/odd,"q"' || char(10) || ';' || n
       WHEN n % 7 = 0 THEN '/ünïcödé/' || (n % 11) || '.html'
       ELSE '/docs/' || (n % 300) || '.html' END,
  randomblob(32), 1000 + n % 5000, 'node-' || (n % 3), '192.0.2.' || (n % 250),
  CASE WHEN n % 4 = 0 THEN NULL ELSE 'agent/' || (n % 5) END, t,
  CASE WHEN k < 6 THEN 'issued' WHEN k = 6 THEN 'bound' WHEN k < 9 THEN 'confirmed' ELSE 'corrupted' END,
  CASE WHEN k < 6 THEN NULL ELSE printf('client-%036d', n % 1000) END,
  CASE WHEN k < 6 THEN NULL ELSE '2001:db8::' || (n % 100) END,
  CASE WHEN k < 6 THEN NULL ELSE t + 40 END,
  CASE WHEN k < 7 THEN NULL ELSE t + 400 + n % 9000 END,
  CASE WHEN k < 7 THEN NULL ELSE '198.51.100.' || (n % 200) END,
  CASE WHEN k < 7 THEN NULL WHEN k = 8 AND n % 3 = 0 THEN NULL ELSE randomblob(32) END,
  CASE WHEN k < 7 THEN NULL ELSE 1000 + n % 5000 END,
  CASE WHEN k < 7 THEN NULL ELSE t + 390 END,
  CASE WHEN k < 7 THEN NULL ELSE 'eyJhbGciOiJFUzI1NiJ9.' || hex(randomblob(60)) || '.sig' END
FROM r;`;

let source; // sqlite:PATH of the generated ledger
let sourceServer; // the stopped server that made it
before(async () => {
  if (!havePg) return;
  sourceServer = await startServer({ files: { 'a.txt': 'a' } });
  assert.equal((await sourceServer.stop()).code, 0, sourceServer.log());
  // Rows written behind the server, into a ledger of the schema before the
  // rollups: the next start builds them from the rows.
  sourceServer.exec('DROP TABLE rollup_status; DROP TABLE rollup_minutes; DROP TABLE rollup_latest;'
    + ' PRAGMA user_version = 7;');
  sourceServer.exec(GENERATE);
  assert.equal(sourceServer.query('SELECT count(*) AS n FROM deliveries')[0].n, ROWS);
  const migrated = await startServer({ root: sourceServer.root, stateDir: sourceServer.stateDir });
  assert.equal((await migrated.stop()).code, 0, migrated.log());
  assert.equal(sourceServer.query('SELECT sum(n) AS n FROM rollup_status')[0].n, ROWS);
  source = `sqlite:${sourceServer.ledgerFile}`;
});

test('to PostgreSQL: cut short, taken up again, verified; and back to SQLite', { skip, timeout: 600000 }, async (t) => {
  const db = pgCreateDatabase('copy');
  const target = pgUrl(db);

  // A first run, killed once some batches are in.
  const first = spawn(RECEIPTD, ['ledger', 'copy', '--batch', '500', source, target], { stdio: 'ignore' });
  t.after(() => first.exitCode === null && first.kill('SIGKILL'));
  const exited = new Promise((resolve) => first.on('exit', resolve));
  for (let i = 0; i < 2000; i++) {
    await sleep(10);
    const n = (() => {
      try { return pgQuery(db, 'SELECT count(*) AS n FROM deliveries')[0].n; } catch { return 0; }
    })();
    if (n >= 5000) break;
  }
  first.kill('SIGKILL');
  await exited;
  // A COMMIT the server had received before the kill still lands: count
  // once the killed client's session is gone.
  for (let i = 0; i < 500; i++) {
    const others = pgQuery(db, `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '${db}' AND pid <> pg_backend_pid()`)[0].n;
    if (others === 0) break;
    await sleep(10);
  }
  const partial = pgQuery(db, 'SELECT count(*) AS n FROM deliveries')[0].n;
  assert.ok(partial > 0 && partial < ROWS, `cut short (${partial} rows in)`);
  assert.equal(partial % 500, 0, 'whole batches only');

  const again = ledgerCmd('copy', source, target);
  assert.equal(again.status, 0, again.stderr + again.stdout);
  const m = /copied (\d+) rows \((\d+) were there from an earlier run\)/.exec(again.stdout);
  assert.ok(m, again.stdout);
  assert.equal(Number(m[2]), partial);
  assert.equal(Number(m[1]) + Number(m[2]), ROWS);
  const verified = /verified: (\d+) rows in each, digest sha256:([0-9a-f]{64})/.exec(again.stdout);
  assert.ok(verified, again.stdout);
  assert.equal(Number(verified[1]), ROWS);
  assert.ok(!again.stdout.includes('password'));

  // Every month of the source has its partition; nothing fell to the default.
  assert.equal(pgQuery(db, 'SELECT count(*) AS n FROM deliveries_default')[0].n, 0);
  assert.ok(pgQuery(db, "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'deliveries'::regclass")[0].n >= 24);

  // Nothing more to do the next time, and the same digest.
  const noop = ledgerCmd('copy', source, target);
  assert.equal(noop.status, 0, noop.stderr);
  assert.match(noop.stdout, new RegExp(`copied 0 rows \\(${ROWS} were there`));
  assert.ok(noop.stdout.includes(verified[2]));

  // The evidence log came along: the same newest checkpoint, signed by the
  // site's log key, so a receiptd on the copy needs the site's keys.
  assert.match(again.stdout, /evidence log leaves in \d+ checkpoints/);
  assert.match(again.stdout, /evidence log of \d+ leaves in each/);
  const movedState = path.join(tempDir('receipt-moved-'), 'state');
  const exported = spawnSync(RECEIPTD, ['keys', 'export', '--state-dir', sourceServer.stateDir]);
  assert.equal(exported.status, 0, String(exported.stderr));
  const imported = spawnSync(RECEIPTD, ['keys', 'import', '--state-dir', movedState, '-'], { input: exported.stdout });
  assert.equal(imported.status, 0, String(imported.stderr));

  // A receiptd serving the copy answers the admin API as on the original.
  const original = await startServer({ root: sourceServer.root, stateDir: sourceServer.stateDir });
  t.after(() => original.kill());
  const moved = await startServer({ root: sourceServer.root, stateDir: movedState, args: ['--ledger', target] });
  t.after(() => moved.kill());
  const get = async (srv, p) => {
    const res = await fetch(srv.adminUrl + p, { headers: { Authorization: `Bearer ${srv.adminToken()}` } });
    assert.equal(res.status, 200, p);
    return res.text();
  };
  for (const p of ['/api/summary', '/api/contents', '/api/clients',
    '/api/deliveries?limit=1000', '/api/deliveries?status=corrupted&limit=200',
    '/api/deliveries?content=/docs/17.html&limit=500',
    `/api/series?since=${1700000000000 + 50000 * 600000}&until=${1700000000000 + 51000 * 600000}`]) {
    assert.equal(await get(moved, p), await get(original, p), p);
  }
  assert.equal((await original.stop()).code, 0);
  assert.equal((await moved.stop()).code, 0);

  // Back into a new SQLite file.
  const dir = tempDir('receipt-copy-');
  const back = `sqlite:${path.join(dir, 'back.sqlite')}`;
  const home = ledgerCmd('copy', target, back);
  assert.equal(home.status, 0, home.stderr + home.stdout);
  assert.ok(home.stdout.includes(`verified: ${ROWS} rows in each, digest sha256:${verified[2]}`), home.stdout);
  assert.equal(fs.statSync(path.join(dir, 'back.sqlite')).mode & 0o777, 0o600);
  // (The original has logged its rows since, as the copy's server has its
  // own: the copy and its copy are the same, logs included.)
  const same = ledgerCmd('compare', target, back);
  assert.equal(same.status, 0, same.stderr + same.stdout);

  // One changed field is found and named.
  const victim = pgQuery(db, "SELECT id FROM deliveries WHERE status = 'bound' ORDER BY id LIMIT 1 OFFSET 77")[0].id;
  pgExec(db, `UPDATE deliveries SET client = 'someone-else' WHERE id = '${victim}'`);
  const changed = ledgerCmd('compare', source, target);
  assert.equal(changed.status, 1);
  assert.ok(changed.stderr.includes(`row ${victim} differs in client`), changed.stderr);
  // A missing row too.
  pgExec(db, `DELETE FROM deliveries WHERE id = '${victim}'`);
  const missing = ledgerCmd('compare', source, target);
  assert.equal(missing.status, 1);
  assert.ok(missing.stderr.includes(`row ${victim} is only in the first ledger`), missing.stderr);
});

test('a destination holding other rows is refused; usage errors', { skip, timeout: 120000 }, async (t) => {
  const other = await startServer({ files: { 'a.txt': 'a' } });
  t.after(() => other.kill());
  await (await fetch(other.url + '/a.txt')).text();
  await other.until(() => other.query('SELECT count(*) AS n FROM deliveries')[0].n === 1);
  assert.equal((await other.stop()).code, 0);
  const refused = ledgerCmd('copy', source, `sqlite:${other.ledgerFile}`);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /is not the source's: the destination must be empty/);
  assert.equal(other.query('SELECT count(*) AS n FROM deliveries')[0].n, 1, 'left alone');

  assert.equal(ledgerCmd('copy', source).status, 2);
  assert.equal(ledgerCmd('copy', '--batch', '0', source, 'sqlite:/tmp/x').status, 2);
  assert.equal(ledgerCmd('move', source, 'sqlite:/tmp/x').status, 2);
  assert.equal(ledgerCmd('compare', '--batch', '5', source, source).status, 2);
  const self = ledgerCmd('copy', source, source);
  assert.equal(self.status, 1);
  assert.match(self.stderr, /the same ledger/);
  const help = ledgerCmd('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: receiptd ledger copy/);
  const secret = ledgerCmd('copy', source, 'postgresql://someone:s3cr3t@127.0.0.1:1/none');
  assert.equal(secret.status, 1);
  assert.ok(!secret.stderr.includes('s3cr3t') && !secret.stdout.includes('s3cr3t'), secret.stderr);
});
