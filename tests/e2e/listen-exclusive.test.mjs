// An address one receiptd listens on is refused to a second one, on every
// listener. Bound with SO_REUSEPORT, the second process would share the
// first's connections (the kernel spreads them over both): a stray
// instance with another root or ledger would answer half the clients.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, runReceiptd, startServer, tempDir } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';

const dirs = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function second(args) {
  const dir = tempDir('receipt-second-');
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'root'));
  return runReceiptd(['--root', path.join(dir, 'root'), '--state-dir', path.join(dir, 'state'),
    '--log-level', 'warn', ...args], { timeoutMs: 5000 });
}

test('a second receiptd on a taken public, redirect or admin address exits with the reason', async () => {
  const pair = makeCA().issue();
  const redirectPort = await freePort();
  const srv = await startServer({
    https: true,
    files: { 'a.txt': 'first\n' },
    args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--redirect-http', `127.0.0.1:${redirectPort}`],
  });
  try {
    const tls = ['--tls-cert', pair.chain, '--tls-key', pair.key];
    const cases = [
      ['public', ['--listen', `127.0.0.1:${srv.port}`, '--admin-listen', 'off'],
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port}: Address already in use`)],
      ['redirect', ['--listen', `127.0.0.1:${await freePort()}`, '--admin-listen', 'off', ...tls,
        '--public-url', 'https://localhost', '--redirect-http', `127.0.0.1:${redirectPort}`],
        /cannot listen on 127\.0\.0\.1:\d+ \(--redirect-http\): Address already in use/],
      ['admin', ['--listen', `127.0.0.1:${await freePort()}`, '--admin-listen', `127.0.0.1:${srv.adminPort}`],
        /cannot listen on 127\.0\.0\.1:\d+ \(admin\): Address already in use/],
    ];
    for (const [what, args, reason] of cases) {
      const r = await second(args);
      assert.equal(r.signal, null, `${what}: the second receiptd ran on (it shared the address)`);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, reason, what);
    }
    // The first is unaffected.
    assert.equal(srv.proc.exitCode, null);
  } finally {
    assert.equal((await srv.stop()).code, 0, srv.log());
  }
});
