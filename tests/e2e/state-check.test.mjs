// `--check` runs the checks of start-up (the same code) plus a full
// integrity check of the ledger: for every bad state of the state directory,
// both refuse it with the same clear message, and neither alters a file that
// is not receiptd's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, runReceiptd, tempDir, writeLedger, queryLedger } from './lib/server.mjs';

const RECEIPTD_APP_ID = 0x72637074; // "rcpt"

const digest = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// A state directory with keys, token and a ledger of `rows` deliveries.
async function makeState(rows = 0) {
  const srv = await startServer({ files: { 'a.txt': 'hello' } });
  for (let i = 0; i < Math.min(rows, 1); i++) await (await fetch(srv.url + '/a.txt')).text();
  await srv.until(() => queryLedger(srv.ledgerFile, 'SELECT count(*) AS n FROM deliveries')[0].n >= Math.min(rows, 1));
  assert.equal((await srv.stop()).code, 0, srv.log());
  if (rows > 1) {
    // Many rows at once, as receiptd would write them, to make a ledger of many pages.
    writeLedger(srv.ledgerFile, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
      INSERT INTO deliveries (id, path, sha256, size, server, client_addr, user_agent, issued_ms, status)
      SELECT printf('01900000-0000-7000-8000-%012x', i), '/a.txt', randomblob(32), 5, 'node', '127.0.0.1',
             'agent ' || hex(randomblob(40)), 1764100000000 + i, 'issued' FROM n`);
  }
  return { root: srv.root, stateDir: srv.stateDir, ledger: srv.ledgerFile };
}

const check = (st, extra = []) => runReceiptd(['--check', '--root', st.root, '--state-dir', st.stateDir,
  '--admin-listen', '127.0.0.1:0', ...extra]);
const start = (st, extra = []) => runReceiptd(['--root', st.root, '--state-dir', st.stateDir,
  '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...extra], { timeoutMs: 5000 });

// Both refuse, exit 1, and say the same thing.
async function bothRefuse(st, pattern) {
  const c = await check(st);
  assert.equal(c.code, 1, `--check: ${c.stdout}${c.stderr}`);
  assert.match(c.stderr, pattern);
  const s = await start(st);
  assert.equal(s.code, 1, `start: ${s.stdout}${s.stderr}`);
  assert.match(s.stderr, pattern);
}

test('a garbage ledger is refused by --check and start-up', async () => {
  const st = await makeState();
  fs.writeFileSync(st.ledger, 'these bytes are no database at all\n'.repeat(200));
  const before = digest(st.ledger);
  await bothRefuse(st, /ledger\.sqlite is not an SQLite database/);
  assert.equal(digest(st.ledger), before, 'left as it was');
});

test('a truncated ledger is refused by --check and start-up', async () => {
  const st = await makeState(3000);
  const size = fs.statSync(st.ledger).size;
  assert.ok(size > 64 * 1024, `a ledger of many pages (${size} bytes)`);
  fs.truncateSync(st.ledger, Math.floor(size / 2 / 4096) * 4096);
  await bothRefuse(st, /ledger\.sqlite is damaged \(.*cut short or overwritten\); restore the ledger from a backup/);
});

test('a damaged page: start-up (header and schema only) serves, --check finds it', async () => {
  const st = await makeState(3000);
  const fd = fs.openSync(st.ledger, 'r+');
  const size = fs.fstatSync(fd).size;
  // Garbage over a page in the middle, past the header and the schema.
  fs.writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 2 / 4096) * 4096);
  fs.closeSync(fd);
  const c = await check(st);
  assert.equal(c.code, 1, c.stdout + c.stderr);
  assert.match(c.stderr, /integrity check failed/);
  assert.match(c.stderr, /restore it from a backup/);
  const srv = await startServer({ root: st.root, stateDir: st.stateDir });
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('another program\'s SQLite file is neither used nor altered', async () => {
  for (const sql of [
    // marked by its owner
    'PRAGMA application_id = 1234567; CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES (\'mine\')',
    // unmarked, and its tables are not a ledger's
    'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES (\'mine\')',
    // unmarked, a table called deliveries that is not receiptd's
    'PRAGMA user_version = 1; CREATE TABLE deliveries (id TEXT, what TEXT)',
  ]) {
    const st = await makeState();
    fs.rmSync(st.ledger);
    writeLedger(st.ledger, sql);
    const before = digest(st.ledger);
    await bothRefuse(st, /ledger\.sqlite (belongs to another program|is an SQLite database of another program)/);
    assert.equal(digest(st.ledger), before, `not altered: ${sql}`);
    assert.equal(fs.existsSync(`${st.ledger}-wal`), false);
  }
});

test('an unmarked ledger with receiptd\'s schema is adopted and marked', async () => {
  const st = await makeState(1);
  writeLedger(st.ledger, 'PRAGMA application_id = 0');
  assert.equal(queryLedger(st.ledger, 'PRAGMA application_id')[0].application_id, 0);
  const c = await check(st);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(queryLedger(st.ledger, 'PRAGMA application_id')[0].application_id, 0, '--check changes nothing');
  const srv = await startServer({ root: st.root, stateDir: st.stateDir });
  assert.equal((await srv.stop()).code, 0, srv.log());
  assert.equal(queryLedger(st.ledger, 'PRAGMA application_id')[0].application_id, RECEIPTD_APP_ID);
  assert.equal(queryLedger(st.ledger, 'SELECT count(*) AS n FROM deliveries')[0].n, 1);
});

test('a ledger of a newer receiptd is refused', async () => {
  const st = await makeState();
  writeLedger(st.ledger, 'PRAGMA user_version = 99');
  await bothRefuse(st, /schema version 99 is newer than this receiptd knows/);
});

test('an admin token that start-up refuses, --check refuses too', async () => {
  for (const [content, mode, pattern] of [
    ['short\n', 0o600, /admin-token: the token must be 22 to 128 base64url characters/],
    ['has spaces and !punctuation! in it, not base64url\n', 0o600, /admin-token: the token must be/],
    ['AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n', 0o640, /admin-token grants access to group or others/],
  ]) {
    const st = await makeState();
    const file = path.join(st.stateDir, 'admin-token');
    fs.writeFileSync(file, content);
    fs.chmodSync(file, mode);
    await bothRefuse(st, pattern);
    // Without the admin listener the token is not needed, and not checked.
    const off = await check(st, ['--admin-listen', 'off']);
    assert.equal(off.code, 0, off.stderr);
  }
});

test('bad server keys are refused by --check and start-up', async () => {
  const st = await makeState();
  const file = path.join(st.stateDir, 'server-keys.json');
  fs.writeFileSync(file, '{"v":1,"enc":{"kty":"EC"},"sig":{},"ticket_secret":"x"}\n');
  await bothRefuse(st, /server-keys\.json: "enc" and "sig" must be valid private P-256 JWKs/);
  fs.writeFileSync(file, 'not json');
  await bothRefuse(st, /server-keys\.json/);
});

test('a recovery file that is not receiptd\'s is refused', async () => {
  const st = await makeState();
  const file = path.join(st.stateDir, 'ledger-recovery');
  fs.writeFileSync(file, 'somebody else\'s notes, at a name receiptd uses\n');
  fs.chmodSync(file, 0o600);
  const before = digest(file);
  await bothRefuse(st, /ledger-recovery is not a receiptd recovery file/);
  assert.equal(digest(file), before);
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

test('no room for the recovery file: --check and start-up say so', {
  skip: isRoot ? false : 'mounting a small tmpfs needs root (CI runs make check as root)',
}, async (t) => {
  const st = await makeState();
  // The state directory on a 2 MB file system: the default queue and batches need about 9 MB.
  const mnt = tempDir('receipt-small-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt]);
  t.after(() => {
    execFileSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });
  const small = { ...st, stateDir: path.join(mnt, 'state') };
  // Keys, token and ledger: the reservation of the first start stays behind.
  fs.cpSync(st.stateDir, small.stateDir, { recursive: true, filter: (f) => !f.endsWith('ledger-recovery') });
  await bothRefuse(small, /(the recovery file needs \d+ bytes in .* and only \d+ are free|cannot reserve \d+ bytes for .*ledger-recovery .*No space left on device)/);
  const fits = await check(small, ['--queue', '256', '--batch', '64']);
  assert.equal(fits.code, 0, fits.stderr);
});
