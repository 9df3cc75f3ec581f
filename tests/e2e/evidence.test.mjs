// The evidence log (docs/evidence.md): every confirmation's answer carries a
// proof that Go's sumdb/tlog and sumdb/note verify against the checkpoint and
// tiles the server publishes; repeats and refusals add no leaf; the log's
// endpoints; evidence bundles. Runs on both ledgers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, tempDir, repoRoot, RECEIPTD, RECEIPT_CLI, LEDGER, ledgerArgs, pgUrl, pgCreateDatabase,
} from './lib/server.mjs';
import {
  newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, postConfirm, sha256b64url,
} from './lib/client.mjs';
import { logcheck } from './lib/logcheck.mjs';
import { runCli } from './lib/cli.mjs';

const PAGE = '<!doctype html><html><body><h1>Notice</h1></body></html>';
const BIN = crypto.randomBytes(2048);

async function browserTicket(srv) {
  const res = await fetch(srv.url + '/page.html');
  await res.text();
  return res.headers.get('receipt-ticket');
}

async function tradeTicket(srv, client, jwks, ticket) {
  const res = await fetch(`${srv.url}/_receipt/plugin/${ticket}`, { headers: { 'Receipt-Client-Key': client.header } });
  assert.equal(res.status, 200);
  return (await openPlugin(client, jwks, await res.text())).payload;
}

/** A device delivery confirmed: {payload, answer}. */
async function deviceCycle(srv, jwks, client) {
  const res = await fetch(srv.url + '/blob.bin', { headers: { 'Receipt-Client-Key': client.header } });
  const body = Buffer.from(await res.arrayBuffer());
  const { payload } = await openPlugin(client, jwks, res.headers.get('receipt-plugin'));
  const jwe = await sealConfirmation(client, jwks, confirmation(payload, { sha256: await sha256b64url(body) }));
  const answer = await postConfirm(payload.server.confirm, client, jwe);
  assert.equal(answer.status, 200, answer.text);
  return { payload, answer, jwe };
}

async function checkpointSize(srv) {
  const text = await (await fetch(srv.url + '/_receipt/log/checkpoint')).text();
  return Number(text.split('\n')[1]);
}

/** The proof's leaf names the delivery and the receipt it came with. */
async function assertProofNames(proof, delivery, receipt, status = 'confirmed') {
  assert.deepEqual(Object.keys(proof).sort(), ['checkpoint', 'hashes', 'index', 'leaf']);
  assert.deepEqual(Object.keys(proof.leaf).sort(), ['event', 'salt']);
  assert.match(proof.leaf.salt, /^[A-Za-z0-9_-]{43}$/);
  for (const h of proof.hashes) assert.match(h, /^[A-Za-z0-9+/]{43}=$/);
  const event = JSON.parse(proof.leaf.event);
  assert.equal(event.type, status);
  assert.equal(event.delivery, delivery);
  assert.equal(event.status, status);
  assert.equal(event.receipt_sha256, await sha256b64url(Buffer.from(receipt)));
  assert.ok(Number.isInteger(proof.index) && proof.index > 0);
}

/** A verifier key of the same name, but another (fresh Ed25519) key. */
function otherLogKey(key) {
  const name = key.split('+')[0];
  const { publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const blob = Buffer.concat([Buffer.from([1]), raw]);
  const id = crypto.createHash('sha256').update(Buffer.concat([Buffer.from(name + '\n'), blob])).digest().subarray(0, 4);
  return `${name}+${id.toString('hex')}+${blob.toString('base64')}`;
}

describe(`evidence log (${LEDGER})`, () => {
  let srv;
  let jwks;
  let key;
  before(async () => {
    srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    jwks = await fetchJwks(srv.url);
    key = (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('thousands of confirmations answer with proofs that Go\'s tlog verifies against the served log', async () => {
    // 2,000 device deliveries confirmed and 400 issued and never confirmed,
    // by 32 concurrent workers on 16 clients: many share a batch and its
    // checkpoint, and the tree spans several levels of tiles.
    const CONFIRMED = 2000;
    const ISSUED_ONLY = 400;
    const WORKERS = 32;
    const clients = await Promise.all(Array.from({ length: 16 }, () => newClient()));
    const proofs = [];
    let next = 0;
    const worker = async (w) => {
      const c = clients[w % clients.length];
      for (let i = next++; i < CONFIRMED + ISSUED_ONLY; i = next++) {
        if (i % 6 === 5) { // issued only: the content fetched, never confirmed
          const res = await fetch(srv.url + '/blob.bin', { headers: { 'Receipt-Client-Key': c.header } });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
          continue;
        }
        const { payload, answer } = await deviceCycle(srv, jwks, c);
        await assertProofNames(answer.json.proof, payload.delivery, answer.json.receipt);
        proofs.push(answer.json.proof);
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    assert.equal(proofs.length, CONFIRMED);
    // Browser deliveries too: issued, bound by the plug-in request, confirmed.
    for (let i = 0; i < 6; i++) {
      const c = clients[i % clients.length];
      const p = await tradeTicket(srv, c, jwks, await browserTicket(srv));
      const answer = await postConfirm(p.server.confirm, c, await sealConfirmation(c, jwks, confirmation(p)));
      assert.equal(answer.status, 200);
      await assertProofNames(answer.json.proof, p.delivery, answer.json.receipt);
      proofs.push(answer.json.proof);
    }
    assert.equal(new Set(proofs.map((p) => p.index)).size, proofs.length, 'a leaf per confirmation');
    assert.ok(await checkpointSize(srv) >= 2 * CONFIRMED + ISSUED_ONLY, 'a leaf per event');
    const checked = logcheck(srv.url, key, proofs);
    assert.equal(checked.status, 0, checked.out);
    assert.equal(checked.lines.filter((l) => /^ok proof \d+$/.test(l)).length, proofs.length, checked.out);
    assert.ok(checked.lines.includes('ok the tree rebuilt from the entry bundles is the checkpoint\'s'), checked.out);

    // The check can fail: another event under the same proof does not verify.
    const forged = structuredClone(proofs[3]);
    forged.leaf.event = forged.leaf.event.replace('"status":"confirmed"', '"status":"corrupted"');
    const salted = structuredClone(proofs[4]);
    salted.leaf.salt = proofs[5].leaf.salt;
    const bad = logcheck(srv.url, key, [proofs[0], forged, salted]);
    assert.equal(bad.status, 1, bad.out);
    assert.deepEqual(bad.lines.filter((l) => /proof \d/.test(l)).map((l) => l.split(':')[0]),
      ['ok proof 1', 'not ok proof 2', 'not ok proof 3']);
    // And a key that is not the log's opens no checkpoint.
    const other = logcheck(srv.url, otherLogKey(key), []);
    assert.equal(other.status, 1);
  });

  test('a repeated confirmation gets the original proof; refusals add no leaf', async () => {
    const a = await newClient();
    const b = await newClient();
    const ticket = await browserTicket(srv);
    const pa = await tradeTicket(srv, a, jwks, ticket);
    const pb = await tradeTicket(srv, b, jwks, ticket);
    const first = await postConfirm(pa.server.confirm, a, await sealConfirmation(a, jwks, confirmation(pa)));
    assert.equal(first.status, 200);
    const size = await checkpointSize(srv);
    assert.ok(first.json.proof.index < size);

    const again = await postConfirm(pa.server.confirm, a, await sealConfirmation(a, jwks, confirmation(pa)));
    assert.equal(again.status, 200);
    assert.equal(again.json.receipt, first.json.receipt);
    assert.deepEqual(again.json.proof.leaf, first.json.proof.leaf);
    assert.equal(again.json.proof.index, first.json.proof.index);
    const refused = await postConfirm(pb.server.confirm, b, await sealConfirmation(b, jwks, confirmation(pb)));
    assert.equal(refused.status, 409);
    assert.equal(refused.json.proof, undefined);
    const bad = await postConfirm(pa.server.confirm, a, 'not.a.jwe.at.all');
    assert.equal(bad.status, 400);
    assert.equal(await checkpointSize(srv), size, 'no leaf for a repeat or a refusal');
    const checked = logcheck(srv.url, key, [again.json.proof]);
    assert.equal(checked.status, 0, checked.out);
  });

  test('the log\'s endpoints: checkpoint, key, tiles, caching, errors', async () => {
    const cp = await fetch(srv.url + '/_receipt/log/checkpoint');
    assert.equal(cp.status, 200);
    assert.match(cp.headers.get('content-type'), /^text\/plain/);
    assert.equal(cp.headers.get('access-control-allow-origin'), '*');
    const text = await cp.text();
    const [origin, size] = text.split('\n');
    assert.equal(origin, `127.0.0.1:${srv.port}/_receipt/log`);
    assert.ok(key.startsWith(origin + '+'));
    assert.ok(Number(size) > 256, 'a full tile');

    const full = await fetch(srv.url + '/_receipt/log/tile/0/000');
    assert.equal(full.status, 200);
    assert.equal((await full.arrayBuffer()).byteLength, 256 * 32);
    assert.match(full.headers.get('cache-control'), /immutable/);
    // The partial tile of the last full checkpoint's tree, or of a smaller
    // width when that tree ends on a full tile.
    const width = Number(size) % 256 || 1;
    const last = String(Math.floor(Number(size) / 256)).padStart(3, '0');
    const partial = await fetch(`${srv.url}/_receipt/log/tile/0/${Number(size) % 256 ? last : '000'}.p/${width}`);
    assert.equal(partial.status, 200);
    assert.equal(partial.headers.get('cache-control'), 'public, max-age=60', 'a partial tile is not immutable');
    assert.equal(cp.headers.get('cache-control'), 'no-cache');
    const entries = await fetch(srv.url + '/_receipt/log/tile/entries/000');
    assert.equal((await entries.arrayBuffer()).byteLength, 256 * 34);
    const head = await fetch(srv.url + '/_receipt/log/tile/0/000', { method: 'HEAD' });
    assert.equal(head.status, 200);

    for (const [p, status] of [
      ['tile/0/x000/000', 404], // not the one name of tile 0
      ['tile/0/001.p/0', 404],
      ['tile/0/999', 404], // beyond the tree
      ['tile/9/000', 404],
      ['nothing', 404],
    ]) {
      const res = await fetch(`${srv.url}/_receipt/log/${p}`);
      assert.equal(res.status, status, p);
      assert.equal(res.headers.get('content-type'), 'application/json', p);
      assert.ok((await res.json()).error, p);
    }
    const post = await fetch(srv.url + '/_receipt/log/checkpoint', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
  });

  test('receiptd evidence writes the bundle of a delivery', async () => {
    const c = await newClient();
    const { payload, answer } = await deviceCycle(srv, jwks, c);
    const run = (args) => spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir,
      ...ledgerArgs(srv.stateDir), ...args], { encoding: 'utf8' });
    const r = run([payload.delivery]);
    assert.equal(r.status, 0, r.stderr);
    const bundle = JSON.parse(r.stdout);
    assert.equal(bundle.v, 1);
    assert.equal(bundle.delivery, payload.delivery);
    assert.equal(bundle.receipt, answer.json.receipt);
    assert.equal(bundle.origin, key.split('+')[0]);
    assert.deepEqual(bundle.events.map((e) => JSON.parse(e.leaf.event).type), ['issued', 'confirmed']);
    const confirmed = bundle.events[1];
    assert.equal(confirmed.index, answer.json.proof.index);
    assert.deepEqual(confirmed.leaf, answer.json.proof.leaf);
    assert.equal(confirmed.batch.checkpoint, answer.json.proof.checkpoint);
    assert.equal(bundle.keys.log[0].key, key);
    // Each event's proof, in the bundle's checkpoint, passes Go's checker.
    const proofs = bundle.events.map((e) => ({ index: e.index, leaf: e.leaf, hashes: e.hashes, checkpoint: bundle.checkpoint }));
    const checked = logcheck(srv.url, key, proofs);
    assert.equal(checked.status, 0, checked.out);
    // And the whole bundle passes a checker in Python (hashlib, cryptography,
    // jwcrypto), RFC 9162's algorithms written from the RFC.
    const dir = tempDir('receipt-bundle-');
    const file = path.join(dir, 'bundle.json');
    fs.writeFileSync(file, r.stdout);
    const py = (f) => spawnSync('/usr/bin/python3', [path.join(repoRoot, 'tests/interop/bundle_check.py'), f, key], { encoding: 'utf8' });
    let checkedPy = py(file);
    assert.equal(checkedPy.status, 0, checkedPy.stdout + checkedPy.stderr);
    assert.match(checkedPy.stdout, /ok the receipt verifies/);
    const bent = structuredClone(bundle);
    bent.events[0].batch.consistency.push(bent.events[0].hashes[0] || 'A'.repeat(43) + '=');
    fs.writeFileSync(file, JSON.stringify(bent));
    checkedPy = py(file);
    assert.equal(checkedPy.status, 1, checkedPy.stdout + checkedPy.stderr);
    assert.match(checkedPy.stdout, /not ok event 1 .*not consistent/);

    assert.equal(run(['01900000-0000-7000-8000-000000000000']).status, 4);
    assert.equal(run(['not-an-id']).status, 2);

    // The admin API gives the same bundle.
    const auth = { headers: { Authorization: `Bearer ${srv.adminToken()}` } };
    const api = await fetch(`${srv.adminUrl}/api/deliveries/${payload.delivery}/evidence`, auth);
    assert.equal(api.status, 200);
    assert.equal(api.headers.get('content-type'), 'application/json');
    const fromApi = await api.json();
    assert.deepEqual({ ...fromApi, made_ms: 0 }, { ...bundle, made_ms: 0 });
    for (const [id, status] of [['01900000-0000-7000-8000-000000000000', 404], ['xyz', 404]]) {
      const res = await fetch(`${srv.adminUrl}/api/deliveries/${id}/evidence`, auth);
      assert.equal(res.status, status, id);
      assert.equal((await res.json()).error, 'not_found');
    }
    assert.equal((await fetch(`${srv.adminUrl}/api/deliveries/${payload.delivery}/evidence`)).status, 401);
  });
});

// The command's side: receipt fetch keeps the proof beside the receipt,
// receipt verify checks it, receipt verify --bundle checks a bundle with no
// network, receipt audit pins the log's key and reports a rewritten log.
describe(`receipt verify and audit (${LEDGER})`, () => {
  const xdg = tempDir('receipt-xdg-');
  const cli = (args, opts = {}) => spawnSync(RECEIPT_CLI, args, {
    encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: xdg, ...(opts.env || {}) }, timeout: 30000,
  });
  const receipts = path.join(xdg, 'receipt', 'receipts');
  let srv;
  let key;
  before(async () => {
    srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    key = (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
  });
  after(async () => { if (srv) await srv.stop(); });

  async function fetched() {
    const out = path.join(xdg, 'blob.bin');
    const r = cli(['fetch', srv.url + '/blob.bin', '-o', out, '--json', '-q']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  }

  test('fetch keeps the proof; verify checks it, with the log key too', async () => {
    const got = await fetched();
    const proofFile = path.join(receipts, `${got.delivery}.proof.json`);
    const proof = JSON.parse(fs.readFileSync(proofFile, 'utf8'));
    assert.equal(JSON.parse(proof.leaf.event).delivery, got.delivery);
    const jwks = srv.url + '/_receipt/jwks.json';
    let r = cli(['verify', got.receipt_file, '--jwks', jwks]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /in the evidence log/);
    r = cli(['verify', got.receipt_file, '--jwks', jwks, '--log-key', key]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /signed by the log key/);
    // Another log's key, a proof of another event, a proof with a hash changed: refused.
    r = cli(['verify', got.receipt_file, '--jwks', jwks, '--log-key', otherLogKey(key)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /its checkpoint is signed by another key of log .* not by the key given/);
    const second = await fetched();
    const swapped = path.join(xdg, 'swapped.proof.json');
    fs.copyFileSync(path.join(receipts, `${second.delivery}.proof.json`), swapped);
    r = cli(['verify', got.receipt_file, '--jwks', jwks, '--proof', swapped]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not of delivery/);
    const bent = structuredClone(proof);
    bent.index += 1;
    fs.writeFileSync(swapped, JSON.stringify(bent));
    r = cli(['verify', got.receipt_file, '--jwks', jwks, '--proof', swapped]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is not in the tree/);
  });

  test('verify --bundle checks a bundle offline and says what failed', async () => {
    const got = await fetched();
    const made = spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir), got.delivery], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const file = path.join(xdg, 'bundle.json');
    fs.writeFileSync(file, made.stdout);
    // No network: a proxy that does not exist, and the server's URL nowhere.
    const offline = { env: { http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', ALL_PROXY: 'http://127.0.0.1:9' } };
    let r = cli(['verify', '--bundle', file, '--log-key', key], offline);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.delivery, got.delivery);
    assert.equal(report.status, 'confirmed');
    assert.deepEqual(report.events, ['issued', 'confirmed']);

    const bundle = JSON.parse(made.stdout);
    const broken = [
      ['an event changed', (b) => { b.events[1].leaf.event = b.events[1].leaf.event.replace('"confirmed"', '"corrupted"'); }, 1, /event 2: .*not in the tree/],
      ['another receipt', (b) => { b.receipt = got.receipt.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')); }, 1, /receipt/],
      ['events reordered', (b) => { b.events.reverse(); }, 1, /event 2: it is not after/],
      ['a consistency proof altered', (b) => { b.events[0].batch.consistency = [b.events[1].hashes[0] || 'A'.repeat(43) + '=']; }, 5, /rewritten or forked/],
      ['a checkpoint not signed by the log key', (b) => { b.keys.log = [{ key: otherLogKey(key) }]; }, 1, /its checkpoint is signed by another key of log/],
    ];
    for (const [name, change, status, message] of broken) {
      const b = structuredClone(bundle);
      change(b);
      fs.writeFileSync(file, JSON.stringify(b));
      r = cli(['verify', '--bundle', file], offline);
      assert.equal(r.status, status, `${name}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
    }
  });

  test('audit follows a log key rotation the log announced under both keys', async () => {
    const logs = path.join(xdg, 'logs-rotation');
    let r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    const before = JSON.parse(r.stdout);
    assert.equal((await srv.stop()).code, 0);
    const rotated = spawnSync(RECEIPTD, ['keys', 'rotate', '--state-dir', srv.stateDir, 'log'], { encoding: 'utf8' });
    assert.equal(rotated.status, 0, rotated.stderr);
    const { root, stateDir, port } = srv;
    srv = await startServer({ root, stateDir, port });
    const newKey = (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
    assert.notEqual(newKey, before.key);
    await fetched();
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const after = JSON.parse(r.stdout);
    assert.equal(after.key_changed, true);
    assert.equal(after.key, newKey);
    assert.equal(after.previous, before.size);
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).key_changed, false);
    key = newKey;
    // Receipts and bundles from before the rotation still verify with the old key.
    const old = fs.readdirSync(receipts).find((f) => f.endsWith('.jws'));
    r = cli(['verify', path.join(receipts, old), '--jwks', srv.url + '/_receipt/jwks.json', '--log-key', before.key]);
    assert.equal(r.status, 0, r.stderr);
    // A bundle that spans the rotation verifies, with no network, with
    // either key: it carries the change, signed by both; a key the log never
    // had does not open it.
    const made = spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir),
      old.replace(/\.jws$/, '')], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const bundle = JSON.parse(made.stdout);
    assert.ok(bundle.keys.log_changes.some((c) => JSON.parse(c.leaf.event).previous === before.key));
    const bundleFile = path.join(xdg, 'bundle-rotated.json');
    fs.writeFileSync(bundleFile, made.stdout);
    const offline = spawnSync('unshare', ['-n', 'true']).status === 0
      ? (args) => spawnSync('unshare', ['-n', RECEIPT_CLI, ...args], { encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: xdg } })
      : (args) => cli(args, { env: { http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', ALL_PROXY: 'http://127.0.0.1:9' } });
    for (const k of [before.key, newKey]) {
      r = offline(['verify', '--bundle', bundleFile, '--log-key', k]);
      assert.equal(r.status, 0, `${k}: ${r.stderr}`);
    }
    r = offline(['verify', '--bundle', bundleFile, '--log-key', otherLogKey(newKey)]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /its checkpoint is signed by another key of log .*, nor by a key that the bundle's key changes link to them/);
    // A server with keys of its own at the same address: not the log pinned.
    assert.equal((await srv.stop()).code, 0);
    const stranger = await startServer({ root, port });
    try {
      r = cli(['audit', stranger.url, '--logs', logs]);
      assert.equal(r.status, 5, r.stderr + r.stdout);
      assert.match(r.stderr, /not signed by the pinned key/);
    } finally {
      assert.equal((await stranger.stop()).code, 0);
    }
    srv = await startServer({ root, stateDir, port });
  });

  test('verify --bundle checks that each key was in use when it signed, across a rotation', async () => {
    const bundleOf = (delivery) => {
      const made = spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir), delivery], { encoding: 'utf8' });
      assert.equal(made.status, 0, made.stderr);
      return JSON.parse(made.stdout);
    };
    const file = path.join(xdg, 'bundle-keys.json');
    const verify = (b, args = []) => {
      fs.writeFileSync(file, JSON.stringify(b));
      return cli(['verify', '--bundle', file, ...args]);
    };
    const before = await fetched();
    // The receipt signing key rotates on the stopped server.
    assert.equal((await srv.stop()).code, 0);
    const rotated = spawnSync(RECEIPTD, ['keys', 'rotate', '--state-dir', srv.stateDir, 'signing'], { encoding: 'utf8' });
    assert.equal(rotated.status, 0, rotated.stderr);
    const { root, stateDir, port } = srv;
    srv = await startServer({ root, stateDir, port });
    const after = await fetched();

    const old = bundleOf(before.delivery);
    const kid = JSON.parse(Buffer.from(old.receipt.split('.')[0], 'base64url')).kid;
    const entry = old.keys.signing.find((k) => k.jwk.kid === kid);
    assert.ok(entry.until_ms > 0, 'the old key has retired');
    assert.notEqual(old.keys.signing[0].jwk.kid, kid, 'a new key signs now');
    // Signed by the old key while it was in use, by the new one after: both pass.
    let r = verify(old);
    assert.equal(r.status, 0, r.stderr);
    r = verify(old, ['--log-key', key]);
    assert.equal(r.status, 0, r.stderr);
    const fresh = bundleOf(after.delivery);
    assert.equal(JSON.parse(Buffer.from(fresh.receipt.split('.')[0], 'base64url')).kid, fresh.keys.signing[0].jwk.kid);
    r = verify(fresh);
    assert.equal(r.status, 0, r.stderr);

    // A receipt signed by a key outside the time it was in use fails, named.
    const at = JSON.parse(Buffer.from(old.receipt.split('.')[1], 'base64url')).confirmed_at_ms;
    for (const [name, change] of [
      ['retired before it signed', (k) => { k.until_ms = at - 1; }],
      ['made after it signed', (k) => { k.since_ms = at + 1; }],
    ]) {
      const b = structuredClone(old);
      change(b.keys.signing.find((k) => k.jwk.kid === kid));
      r = verify(b);
      assert.equal(r.status, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`its receipt is signed by key ${kid}, in use from \\S+ until \\S+, not at \\S+ \\(its confirmed_at_ms\\)`), name);
    }
    // The checker in Python agrees, on the old key and on one bent.
    const py = (b) => {
      fs.writeFileSync(file, JSON.stringify(b));
      return spawnSync('/usr/bin/python3', [path.join(repoRoot, 'tests/interop/bundle_check.py'), file], { encoding: 'utf8' });
    };
    let checked = py(old);
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, new RegExp(`ok the receipt's key ${kid} was in use`));
    const bentOld = structuredClone(old);
    bentOld.keys.signing.find((k) => k.jwk.kid === kid).until_ms = at - 1;
    checked = py(bentOld);
    assert.equal(checked.status, 1, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /not ok the receipt's key .* not at /);
    const bentLog = structuredClone(fresh);
    bentLog.keys.log.find((k) => k.key === key).since_ms = fresh.made_ms + 1;
    checked = py(bentLog);
    assert.equal(checked.status, 1, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /not ok event 1 .*signed by a log key not in use/);
    // A checkpoint signed by a log key outside its time fails too: the
    // batch's, at its event's time, and the bundle's newest.
    let b = structuredClone(fresh);
    const logKey = b.keys.log.find((k) => k.key === key);
    logKey.since_ms = b.made_ms + 1;
    r = verify(b);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /event 1: the checkpoint of its batch is signed by log key .*, in use from .* not at /);
    b = structuredClone(fresh);
    b.keys.log.find((k) => k.key === key).until_ms = JSON.parse(b.events[b.events.length - 1].leaf.event).confirmed_ms;
    b.made_ms = b.keys.log.find((k) => k.key === key).until_ms + 60000;
    r = verify(b);
    assert.equal(r.status, 0, `retired after the last event: ${r.stderr}`);
    b.keys.log.find((k) => k.key === key).until_ms -= 1;
    r = verify(b);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /the checkpoint of its batch is signed by log key/);
    // A key history that is not one: refused.
    b = structuredClone(fresh);
    b.keys.signing[0].since_ms = 'yesterday';
    r = verify(b);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /signing key 1 of the bundle has no valid since_ms, until_ms/);
  });

  const cliAsync = async (args) => {
    const r = await runCli(args, { env: { XDG_STATE_HOME: xdg } });
    return { status: r.code, stdout: r.stdout, stderr: r.stderr };
  };

  /** A reverse proxy on loopback: route(req) gives the server and path to
   * forward to, or answers itself (returns null). */
  async function startProxy(route) {
    const proxy = http.createServer((req, res) => {
      const to = route(req, res);
      if (to === null) return;
      fetch(new URL(to.path, to.server.url)).then(async (up) => {
        const body = Buffer.from(await up.arrayBuffer());
        res.writeHead(up.status, { 'Content-Type': up.headers.get('content-type') || 'application/octet-stream' });
        res.end(body);
      }).catch((e) => { res.writeHead(502); res.end(String(e)); });
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${proxy.address().port}`, close: () => proxy.close() };
  }

  const pinFiles = (logs) => fs.readdirSync(logs).filter((f) => f.endsWith('.json')).sort();
  const keptSize = (file) => Number(JSON.parse(fs.readFileSync(file, 'utf8')).checkpoint.split('\n')[1]);

  test('audit: logs at URLs that older versions gave one pin name keep a pin each', async () => {
    // Two logs behind one host, at /x_y and at /x/y: older versions named
    // both pins 127.0.0.1_PORT_x_y__receipt_log.json.
    const other = await startServer({ files: { 'blob.bin': BIN } });
    const proxy = await startProxy((req, res) => {
      for (const [prefix, server] of [['/x_y/', srv], ['/x/y/', other]]) {
        if (req.url.startsWith(prefix)) return { server, path: req.url.slice(prefix.length - 1) };
      }
      res.writeHead(404);
      res.end();
      return null;
    });
    try {
      const a = `${proxy.url}/x_y`;
      const b = `${proxy.url}/x/y`;
      const logs = path.join(xdg, 'logs-collide');
      for (const first of [true, false]) {
        for (const url of [a, b]) {
          const r = await cliAsync(['audit', url, '--logs', logs, '--json']);
          assert.equal(r.status, 0, `${url}: ${r.stderr}${r.stdout}`);
          assert.equal(JSON.parse(r.stdout).first_use, first, url);
        }
      }
      const names = pinFiles(logs);
      assert.equal(names.length, 2, names.join(' '));
      for (const n of names) assert.match(n, /^127\.0\.0\.1_\d+_x_y__receipt_log-[0-9a-f]{64}\.json$/);
      assert.ok(fs.existsSync(path.join(logs, `${names[0]}`.replace(/\.json$/, '.lock'))));

      // A pin under the older name: the log it pins takes it over (and
      // renames it); the other log never reads it.
      const legacyDir = path.join(xdg, 'logs-legacy');
      fs.mkdirSync(legacyDir);
      const legacy = path.join(legacyDir, `127.0.0.1_${new URL(proxy.url).port}_x_y__receipt_log.json`);
      const pinOfA = JSON.parse((await cliAsync(['audit', a, '--logs', path.join(xdg, 'logs-a'), '--json'])).stdout);
      fs.writeFileSync(legacy, fs.readFileSync(path.join(xdg, 'logs-a', pinFiles(path.join(xdg, 'logs-a'))[0])));
      const before = fs.readFileSync(legacy, 'utf8');
      let r = await cliAsync(['audit', b, '--logs', legacyDir, '--json']);
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.equal(JSON.parse(r.stdout).first_use, true);
      assert.equal(fs.readFileSync(legacy, 'utf8'), before);
      await fetched();
      r = await cliAsync(['audit', a, '--logs', legacyDir, '--json']);
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.equal(JSON.parse(r.stdout).first_use, false);
      assert.equal(JSON.parse(r.stdout).previous, pinOfA.size);
      assert.ok(JSON.parse(r.stdout).size > pinOfA.size);
      assert.equal(fs.existsSync(legacy), false);
      assert.equal(pinFiles(legacyDir).length, 2);
    } finally {
      proxy.close();
      assert.equal((await other.stop()).code, 0, other.log());
    }
  });

  test('audit: audits of one log at once run in turn, and the larger checkpoint stays pinned', async () => {
    // The first checkpoint asked for is an older one (a cache that lags),
    // answered late: an audit that read the pin before the others saved
    // theirs would save it last.
    let stale = null;
    const proxy = await startProxy((req, res) => {
      if (req.url === '/_receipt/log/checkpoint' && stale !== null) {
        const body = stale;
        stale = null;
        setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(body);
        }, 1500);
        return null;
      }
      return { server: srv, path: req.url };
    });
    try {
      const logs = path.join(xdg, 'logs-concurrent');
      let r = await cliAsync(['audit', proxy.url, '--logs', logs]);
      assert.equal(r.status, 0, r.stderr);
      await fetched();
      const older = await (await fetch(srv.url + '/_receipt/log/checkpoint')).text();
      await fetched();
      const newest = Number((await (await fetch(srv.url + '/_receipt/log/checkpoint')).text()).split('\n')[1]);
      assert.ok(newest > Number(older.split('\n')[1]));
      stale = older;
      const runs = await Promise.all([0, 1, 2, 3].map(() => cliAsync(['audit', proxy.url, '--logs', logs, '--json'])));
      for (const run of runs) assert.equal(run.status, 0, run.stderr + run.stdout);
      assert.equal(stale, null);
      const names = pinFiles(logs);
      assert.equal(names.length, 1);
      assert.equal(keptSize(path.join(logs, names[0])), newest);
      // Each audit checked the checkpoint the one before it kept.
      const previous = runs.map((run) => JSON.parse(run.stdout).previous).sort((x, y) => x - y);
      assert.ok(previous.includes(Number(older.split('\n')[1])), previous.join(' '));
    } finally {
      proxy.close();
    }
  });

  test('audit pins the key, follows the log, and exits 5 on a rewritten log', async () => {
    const logs = path.join(xdg, 'logs-audit');
    let r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).first_use, true);
    assert.match(r.stderr, /first audit/);
    const size = JSON.parse(r.stdout).size;
    await fetched();
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).previous, size);
    assert.ok(JSON.parse(r.stdout).size > size);

    // The same keys on a ledger begun again: a log rewritten from scratch.
    assert.equal((await srv.stop()).code, 0);
    const port = srv.port;
    const state = srv.stateDir;
    const root = srv.root;
    srv = null;
    const fresh = LEDGER === 'postgresql' ? pgUrl(pgCreateDatabase('fork'))
      : `sqlite:${path.join(tempDir('receipt-fork-'), 'ledger.sqlite')}`;
    srv = await startServer({ root, stateDir: state, port, args: ['--ledger', fresh] });
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 5, r.stderr + r.stdout);
    assert.match(r.stderr, /fewer than|rewritten|forked/);
    // Grown past the old size, it still is not the log seen before.
    const target = JSON.parse(fs.readFileSync(fs.readdirSync(logs).filter((f) => f.endsWith('.json')).map((f) => path.join(logs, f))[0], 'utf8')).checkpoint.split('\n')[1];
    for (let i = 0; i < Number(target); i++) await fetched();
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 5, r.stderr + r.stdout);
    assert.match(r.stderr, /not consistent .*rewritten or forked/);
    // Another audit state (another auditor) starts afresh: exit 0.
    r = cli(['audit', srv.url, '--logs', path.join(xdg, 'logs-new')]);
    assert.equal(r.status, 0, r.stderr);
  });
});

// receiptd ledger verify: the ledger and its log agree, and a row edited,
// deleted, inserted or swapped by SQL on the stopped server is named (exit
// 5), as is a leaf altered; a server SIGKILLed under load leaves a log whose
// every checkpoint is consistent with its leaves.
describe(`receiptd ledger verify (${LEDGER})`, () => {
  const verify = (srv, ledger = ledgerArgs(srv.stateDir)) => spawnSync(RECEIPTD,
    ['ledger', 'verify', '--state-dir', srv.stateDir, ...ledger], { encoding: 'utf8', timeout: 60000 });

  test('rows edited, deleted, inserted or swapped, and altered leaves, are found', async () => {
    const srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const c = await newClient();
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await deviceCycle(srv, jwks, c)).payload.delivery);
    await fetch(srv.url + '/page.html').then((r) => r.text()); // an issued row too
    // A user agent that is not UTF-8 (a client sends what it likes): logged
    // with U+FFFD for each byte, three times the column's bytes, and the
    // ledger goes on and verifies.
    const oddAgent = `odd${'\xff\xfe'.repeat(110)} agent`;
    const odd = await new Promise((resolve, reject) => {
      const req = http.get(`${srv.url}/page.html`, { headers: { 'User-Agent': oddAgent } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers['receipt-delivery']));
      });
      req.on('error', reject);
    });
    ids.push((await deviceCycle(srv, jwks, c)).payload.delivery);
    const logged = await srv.until(() => srv.query(`SELECT count(*) AS n FROM log_entries WHERE delivery = '${odd}'`)[0].n === 1);
    assert.ok(logged, 'the odd delivery is in the log');
    assert.equal((await srv.stop()).code, 0);
    let r = verify(srv);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /the ledger and its log agree/);

    const cases = [
      ['a row edited', `UPDATE deliveries SET received_size = received_size + 1 WHERE id = '${ids[0]}'`,
        new RegExp(`delivery ${ids[0]}: its row differs from its logged events in: received_size`)],
      ['a row deleted', `DELETE FROM deliveries WHERE id = '${ids[1]}'`,
        new RegExp(`delivery ${ids[1]}: logged \\(leaf \\d+\\) but it has no row`)],
      ['a row inserted', `INSERT INTO deliveries (id, path, sha256, size, server, client_addr, issued_ms, status)
          SELECT '${ids[2].slice(0, -1)}${ids[2].endsWith('0') ? '1' : '0'}', path, sha256, size, server, client_addr, issued_ms, 'issued'
          FROM deliveries WHERE id = '${ids[2]}'`, /its row is not in the log/],
      ['two rows swapped', `UPDATE deliveries SET receipt = CASE WHEN id = '${ids[3]}' THEN (SELECT receipt FROM deliveries WHERE id = '${ids[4]}')
          ELSE (SELECT receipt FROM deliveries WHERE id = '${ids[3]}') END WHERE id IN ('${ids[3]}', '${ids[4]}')`,
        new RegExp(`delivery ${ids[3]}: its row differs from its logged events in: receipt`)],
      // Another leaf's event put in its place: stored packed (SQLite) or as
      // text, the edit is found by its commitment.
      ['a leaf altered', 'UPDATE log_entries SET event = (SELECT event FROM log_entries WHERE leaf = 5) WHERE leaf = 4',
        /leaf 4: its event or salt was altered/],
    ];
    for (const [name, sql, message] of cases) {
      srv.exec(sql);
      r = verify(srv);
      assert.equal(r.status, 5, `${name}: ${r.stderr}${r.stdout}`);
      assert.match(r.stderr, message, name);
    }
  });

  // SQLite keeps a delivery's leaf numbers in its row (docs/evidence.md,
  // "Storage"): each edit of them is found, and named.
  test('a row\'s leaf numbers edited are found (SQLite)', { skip: LEDGER !== 'sqlite' && 'the numbers are SQLite\'s' }, async () => {
    const srv = await startServer({ files: { 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const c = await newClient();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await deviceCycle(srv, jwks, c)).payload.delivery);
    assert.equal((await srv.stop()).code, 0);
    let r = verify(srv);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const leaves = (id) => srv.query(`SELECT log_leaf AS a, log_leaf_prev AS b FROM deliveries WHERE id = '${id}'`)[0];
    const other = leaves(ids[4]);
    const cases = [
      ['a leaf dropped', `UPDATE deliveries SET log_leaf = NULL WHERE id = '${ids[0]}'`],
      ['two leaves swapped', `UPDATE deliveries SET log_leaf = log_leaf_prev, log_leaf_prev = log_leaf WHERE id = '${ids[1]}'`],
      ['another delivery\'s leaf', `UPDATE deliveries SET log_leaf = ${other.a} WHERE id = '${ids[2]}'`],
      ['a leaf added', `UPDATE deliveries SET log_leaf_prev2 = ${other.b} WHERE id = '${ids[3]}'`],
    ];
    for (const [name, sql] of cases) {
      const id = sql.match(/id = '([^']+)'/)[1];
      srv.exec(sql);
      r = verify(srv);
      assert.equal(r.status, 5, `${name}: ${r.stderr}${r.stdout}`);
      assert.match(r.stderr, new RegExp(`delivery ${id}: its row does not lead to its logged event at leaf \\d+`), name);
      // Its evidence is refused rather than given short.
      const bundle = spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir), id], { encoding: 'utf8' });
      assert.notEqual(bundle.status, 0, name);
    }
  });

  // A ledger of schema 6 (its log indexed by delivery, no leaf numbers in
  // the rows) migrates at start-up: its deliveries' bundles verify, a
  // repeated confirmation gets the original proof, a delivery bound before
  // and confirmed after has its three events, and the ledger verifies.
  test('a ledger from before the leaf numbers in rows migrates (SQLite)', { skip: LEDGER !== 'sqlite' && 'the step is SQLite\'s' }, async () => {
    const srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const key = (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
    const c = await newClient();
    const cycles = [];
    for (let i = 0; i < 4; i++) cycles.push(await deviceCycle(srv, jwks, c));
    const bound = await tradeTicket(srv, c, jwks, await browserTicket(srv));
    assert.ok(await srv.until(() => srv.query(`SELECT status FROM deliveries WHERE id = '${bound.delivery}'`)[0]?.status === 'bound'));
    assert.equal((await srv.stop()).code, 0);
    srv.exec(`ALTER TABLE deliveries DROP COLUMN log_leaf; ALTER TABLE deliveries DROP COLUMN log_leaf_prev;
      ALTER TABLE deliveries DROP COLUMN log_leaf_prev2;
      CREATE INDEX log_entries_delivery ON log_entries (delivery) WHERE delivery IS NOT NULL;
      DROP TABLE rollup_status; DROP TABLE rollup_minutes; DROP TABLE rollup_latest;
      PRAGMA user_version = 6;`);
    const moved = await startServer({ root: srv.root, stateDir: srv.stateDir, port: srv.port });
    try {
      assert.equal(moved.query('PRAGMA user_version')[0].user_version, 8);
      assert.equal(moved.query("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'log_entries_delivery'")[0].n, 0);
      const again = await postConfirm(cycles[0].payload.server.confirm, c, cycles[0].jwe);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json.receipt, cycles[0].answer.json.receipt);
      assert.equal(again.json.proof.index, cycles[0].answer.json.proof.index);
      assert.deepEqual(again.json.proof.leaf, cycles[0].answer.json.proof.leaf);
      const answer = await postConfirm(bound.server.confirm, c, await sealConfirmation(c, jwks, confirmation(bound)));
      assert.equal(answer.status, 200, answer.text);
      const dir = tempDir('receipt-migrated-');
      for (const [id, types] of [[cycles[1].payload.delivery, ['issued', 'confirmed']],
        [bound.delivery, ['issued', 'bound', 'confirmed']]]) {
        const made = spawnSync(RECEIPTD, ['evidence', '--state-dir', moved.stateDir, id], { encoding: 'utf8' });
        assert.equal(made.status, 0, made.stderr);
        assert.deepEqual(JSON.parse(made.stdout).events.map((e) => JSON.parse(e.leaf.event).type), types);
        const file = path.join(dir, `${id}.json`);
        fs.writeFileSync(file, made.stdout);
        const r = await runCli(['verify', '--bundle', file, '--log-key', key]);
        assert.equal(r.code, 0, r.stderr);
      }
    } finally {
      assert.equal((await moved.stop()).code, 0, moved.log());
    }
    const r = verify(moved);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /5 rows: the ledger and its log agree/);
  });

  test('thousands of rows are read in pages: rows edited or deleted at page boundaries are found', async () => {
    const srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const clients = await Promise.all(Array.from({ length: 8 }, () => newClient()));
    // 2,600 rows, issued and confirmed: pages of 1,000 rows, the last partial.
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async (_, w) => {
      for (let i = next++; i < 2600; i = next++) {
        if (i % 4 === 0) await deviceCycle(srv, jwks, clients[w % clients.length]);
        else await fetch(srv.url + '/page.html').then((r) => r.text());
      }
    }));
    const total = () => Number(srv.query('SELECT count(*) AS n FROM deliveries')[0].n);
    assert.ok(await srv.until(() => total() === 2600), 'every row written');
    assert.equal((await srv.stop()).code, 0);
    let r = verify(srv);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /2600 rows: the ledger and its log agree/);

    const idAt = (k) => srv.query(`SELECT id FROM deliveries ORDER BY id LIMIT 1 OFFSET ${k}`)[0].id;
    // The last row of the first page and the first of the second, edited;
    // the last of the second page and the very last, deleted.
    const [last1, first2, last2, final] = [idAt(999), idAt(1000), idAt(1999), idAt(2599)];
    srv.exec(`UPDATE deliveries SET issued_ms = issued_ms + 1 WHERE id IN ('${last1}', '${first2}')`);
    srv.exec(`DELETE FROM deliveries WHERE id IN ('${last2}', '${final}')`);
    r = verify(srv);
    assert.equal(r.status, 5, r.stderr + r.stdout);
    for (const id of [last1, first2]) {
      assert.match(r.stderr, new RegExp(`delivery ${id}: its row differs from its logged events in: issued_ms`));
    }
    for (const id of [last2, final]) {
      assert.match(r.stderr, new RegExp(`delivery ${id}: logged \\(leaf \\d+\\) but it has no row`));
    }
    // The rows deleted behind the server also leave the counts the dashboard
    // shows unsupported.
    assert.match(r.stderr, /rollup of deliveries \w+ \w+: \d+ kept, the rows count \d+/);
    assert.match(r.stderr, /: \d+ problems/);
    assert.match(r.stdout, /2598 rows: PROBLEMS FOUND/);
  });

  test('ledger copy takes the log along: the copy verifies, and an audit from before stays consistent', async () => {
    const srv = await startServer({ files: { 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const c = await newClient();
    for (let i = 0; i < 5; i++) await deviceCycle(srv, jwks, c);
    const xdg = tempDir('receipt-xdg-');
    const logs = path.join(xdg, 'logs');
    let r = spawnSync(RECEIPT_CLI, ['audit', srv.url, '--logs', logs], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await srv.stop()).code, 0);
    const from = LEDGER === 'postgresql' ? ledgerArgs(srv.stateDir)[1] : `sqlite:${srv.ledgerFile}`;
    // To the other backend when there is a PostgreSQL server, else another file.
    const to = LEDGER === 'sqlite' && process.env.RECEIPT_TEST_PG ? pgUrl(pgCreateDatabase('copylog'))
      : `sqlite:${path.join(tempDir('receipt-copy-'), 'copy.sqlite')}`;
    const copied = spawnSync(RECEIPTD, ['ledger', 'copy', from, to], { encoding: 'utf8' });
    assert.equal(copied.status, 0, copied.stderr + copied.stdout);
    assert.match(copied.stdout, /and 1[0-9] evidence log leaves/);
    r = verify(srv, ['--ledger', to]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const moved = await startServer({ root: srv.root, stateDir: srv.stateDir, port: srv.port, args: ['--ledger', to] });
    try {
      await deviceCycle(moved, jwks, c);
      r = spawnSync(RECEIPT_CLI, ['audit', moved.url, '--logs', logs], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.equal(JSON.parse(r.stdout).first_use, false);
    } finally {
      assert.equal((await moved.stop()).code, 0, moved.log());
    }
  });

  test('SIGKILL under load: every checkpoint is consistent with the leaves, every proof given verifies', async () => {
    const srv = await startServer({ files: { 'page.html': PAGE, 'blob.bin': BIN } });
    const jwks = await fetchJwks(srv.url);
    const clients = await Promise.all(Array.from({ length: 6 }, () => newClient()));
    const proofs = [];
    let running = true;
    const workers = clients.map((c) => (async () => {
      while (running) {
        try {
          const { answer } = await deviceCycle(srv, jwks, c);
          proofs.push(answer.json.proof);
        } catch { break; }
      }
    })());
    await new Promise((r) => setTimeout(r, 700));
    await srv.kill();
    running = false;
    await Promise.all(workers);
    assert.ok(proofs.length > 10, `confirmations before the kill (${proofs.length})`);
    const r = verify(srv);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    // Started again on the same ledger, the log carries on, and holds every
    // proof that was answered.
    const again = await startServer({ root: srv.root, stateDir: srv.stateDir, port: srv.port });
    try {
      const key = (await (await fetch(again.url + '/_receipt/log/key')).text()).trim();
      const checked = logcheck(again.url, key, proofs);
      assert.equal(checked.status, 0, checked.out);
    } finally {
      assert.equal((await again.stop()).code, 0, again.log());
    }
  });
});

describe('--no-evidence-log (for measuring what the log costs)', () => {
  test('answers carry no proof, the log is not served, the admin API says why', async () => {
    const srv = await startServer({ files: { 'blob.bin': BIN }, args: ['--no-evidence-log'] });
    try {
      const jwks = await fetchJwks(srv.url);
      const { payload, answer } = await deviceCycle(srv, jwks, await newClient());
      assert.equal(answer.json.proof, undefined);
      assert.equal(answer.json.delivery, payload.delivery);
      const cp = await fetch(srv.url + '/_receipt/log/checkpoint');
      assert.equal(cp.status, 404);
      assert.equal((await cp.json()).error, 'not_found');
      const auth = { headers: { Authorization: `Bearer ${srv.adminToken()}` } };
      const res = await fetch(`${srv.adminUrl}/api/deliveries/${payload.delivery}/evidence`, auth);
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error, 'no_evidence_log');
    } finally {
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  });

  test('rows kept without the log are recorded at the next start with it, and the log says so', async () => {
    const files = { 'blob.bin': BIN };
    const first = await startServer({ files, args: ['--no-evidence-log'] });
    const ROWS = 25;
    try {
      for (let i = 0; i < ROWS; i++) {
        const res = await fetch(`${first.url}/blob.bin`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await first.until(() => first.query('SELECT count(*) AS n FROM deliveries')[0].n >= ROWS);
    } finally {
      assert.equal((await first.stop()).code, 0, first.log());
    }
    const again = await startServer({ root: first.root, stateDir: first.stateDir, logLevel: 'info' });
    try {
      assert.match(again.log(), /recording the rows the ledger held before the log began/);
      assert.match(again.log(), new RegExp(`the ${ROWS} rows held before the log recorded, in [0-9.]+ s`));
      // The log's first leaf names its key, then one leaf a row kept before it.
      assert.equal(await checkpointSize(again), ROWS + 1);
    } finally {
      assert.equal((await again.stop()).code, 0, again.log());
    }
    // Nothing left to record: the next start says nothing of it.
    const third = await startServer({ root: first.root, stateDir: first.stateDir, logLevel: 'info' });
    try {
      assert.doesNotMatch(third.log(), /held before the log/);
      assert.equal(await checkpointSize(third), ROWS + 1);
    } finally {
      assert.equal((await third.stop()).code, 0, third.log());
    }
  });
});
