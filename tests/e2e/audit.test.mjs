// Checks of shipped behaviour against the issues' wording, each one a case
// that once went wrong: messages, exit statuses and answers a user sees.
// Quick on purpose: no server unless a case needs one.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, ownTempDir, removeOwnTempDirs } from './lib/cli.mjs';

describe('receipt verify --bundle on what is no bundle', () => {
  after(() => removeOwnTempDirs());

  test('a file that is not JSON is said to be so, without naming an empty delivery', async () => {
    const dir = ownTempDir('receipt-audit-');
    const file = path.join(dir, 'bundle.json');
    fs.writeFileSync(file, '{"v":1,');
    const r = await runCli(['verify', '--bundle', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /bundle\.json: the bundle: it is not JSON/);
    assert.doesNotMatch(r.stderr, /the bundle of :/);
  });

  test('a bundle without its delivery says what it lacks', async () => {
    const dir = ownTempDir('receipt-audit-');
    const file = path.join(dir, 'bundle.json');
    fs.writeFileSync(file, JSON.stringify({ v: 1, origin: 'x/_receipt/log', events: [] }));
    const r = await runCli(['verify', '--bundle', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the bundle: it lacks a member/);
  });
});
