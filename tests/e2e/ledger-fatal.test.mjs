// A ledger failure that a retry cannot mend, for real: the ledger file is
// damaged under a running receiptd. The writer must not retry: it refuses
// everything, saves what it holds to the recovery file, stops, and exits 1;
// the next start (on a restored ledger) applies the file, so every delivery
// answered 200 has its row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, writeLedger, queryLedger } from './lib/server.mjs';

test('a corrupt ledger is fatal: saved to the recovery file, exit 1, applied at the next start',
  { timeout: 60000 }, async (t) => {
    const files = { 'a.txt': 'hello' };
    let srv = await startServer({ files, args: ['--log-level', 'info'] });
    t.after(() => srv.kill()); // the last one started, also when an assertion fails
    const { root, stateDir, ledgerFile } = srv;
    const delivered = [];
    const get = async () => {
      const res = await fetch(srv.url + '/a.txt');
      await res.text();
      if (res.status === 200) delivered.push(res.headers.get('receipt-delivery'));
      return res;
    };
    for (let i = 0; i < 300; i++) await get();
    await srv.until(() => queryLedger(ledgerFile, 'SELECT count(*) AS n FROM deliveries')[0].n === 300);

    // Every page in the database file, then garbage over all but the first
    // (the header and the schema), then a write by another connection, so
    // that receiptd's cached pages are read again.
    writeLedger(ledgerFile, 'PRAGMA wal_checkpoint(TRUNCATE)');
    const fd = fs.openSync(ledgerFile, 'r+');
    const size = fs.fstatSync(fd).size;
    for (let off = 4096; off < size; off += 4096) fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, off);
    fs.closeSync(fd);
    writeLedger(ledgerFile, 'PRAGMA user_version = 1');

    // Deliveries queued before the failure is known get their 200; then 503,
    // or no connection at all once receiptd is stopping.
    let refused = null;
    for (let i = 0; i < 200 && !refused; i++) {
      let res;
      try { res = await get(); } catch { refused = { status: 'stopped' }; break; }
      if (res.status !== 200) refused = res;
    }
    assert.ok(refused, `the ledger failure was noticed:\n${srv.log()}`);
    assert.ok([503, 'stopped'].includes(refused.status), String(refused.status));
    const { code } = await srv.exited;
    const log = srv.log();
    assert.equal(code, 1, log);
    assert.match(log, /a retry cannot mend/);
    assert.match(log, /saved to the recovery file/);
    assert.doesNotMatch(log, /lost/i);

    // The operator restores the ledger (here: a new one) and starts again.
    for (const f of fs.readdirSync(stateDir).filter((n) => n.startsWith('ledger.sqlite'))) {
      fs.rmSync(path.join(stateDir, f));
    }
    srv = await startServer({ root, stateDir, args: ['--log-level', 'info'] });
    assert.match(srv.log(), /applied \d+ ledger events saved by the last run/);
    const have = new Set(srv.query('SELECT id FROM deliveries').map((r) => r.id));
    const after = delivered.slice(300);
    assert.ok(after.length > 0, 'some deliveries were answered 200 after the damage');
    assert.deepEqual(after.filter((id) => !have.has(id)), [], 'each has its row from the recovery file');
    assert.equal((await srv.stop()).code, 0, srv.log());
  });
