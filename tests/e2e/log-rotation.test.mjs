// A chain of log key rotations (docs/evidence.md, "Auditing" and "Keys"):
// receipt audit, pinned on the first key, follows two and then three
// rotations link by link, each change leaf in the tree and announced in a
// checkpoint signed by the key it replaces and the new one, consistent with
// the checkpoint trusted before it and with the newest; a forged link
// (served through a proxy that edits GET keys) exits 5 and names the link.
// receipt verify takes several --log-key (the keys an auditor knows the log
// had) for a proof signed before a rotation, and says what to pass when
// none signed it; a bundle carries the chain. Runs on both ledgers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  startServer, tempDir, RECEIPTD, RECEIPT_CLI, LEDGER, ledgerArgs, pgUrl, pgCreateDatabase,
} from './lib/server.mjs';
import { logcheckProgram } from './lib/logcheck.mjs';
import { runCli } from './lib/cli.mjs';

const BIN = crypto.randomBytes(1024);

// ---- RFC 9162 hashing and C2SP signed notes, independently of receipt ----

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (commitment) => sha256(Buffer.from([0]), commitment);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);
const split = (n) => 2 ** Math.floor(Math.log2(n - 1));

function treeHash(leaves) {
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return nodeHash(treeHash(leaves.slice(0, k)), treeHash(leaves.slice(k)));
}

/** RFC 9162 section 2.1.3.1: the inclusion proof of leaf m, bottom up. */
function inclusion(m, leaves) {
  if (leaves.length === 1) return [];
  const k = split(leaves.length);
  return m < k ? [...inclusion(m, leaves.slice(0, k)), treeHash(leaves.slice(k))]
    : [...inclusion(m - k, leaves.slice(k)), treeHash(leaves.slice(0, k))];
}

/** The Ed25519 key of a signer key text (PRIVATE+KEY+name+id+base64(0x01 || seed)). */
function signerOf(text) {
  const [, , name, id, ...rest] = text.split('+');
  const blob = rest.join('+'); // base64 has '+' of its own
  const seed = Buffer.from(blob, 'base64').subarray(1);
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return { name, id: Buffer.from(id, 'hex'), key: crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) };
}

/** A signed note of text (ending in a newline) by the signers given. */
function signNote(text, signers) {
  const lines = signers.map((s) => `\u2014 ${s.name} ${Buffer.concat([s.id, crypto.sign(null, Buffer.from(text), s.key)]).toString('base64')}\n`);
  return `${text}\n${lines.join('')}`;
}

/** The note without the signature of the verifier key given. */
function withoutSignatureOf(note, verifierKey) {
  const id = verifierKey.split('+')[1];
  return note.split('\n').filter((l) => !(l.startsWith('\u2014 ') &&
    Buffer.from(l.split(' ')[2], 'base64').subarray(0, 4).toString('hex') === id)).join('\n');
}

/** A fresh Ed25519 key of the name given: its signer (for signNote) and verifier key. */
function freshSigner(name) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const blob = Buffer.concat([Buffer.from([1]), publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)]);
  const id = sha256(Buffer.from(name + '\n'), blob).subarray(0, 4);
  return { signer: { name, id, key: privateKey }, verifier: `${name}+${id.toString('hex')}+${blob.toString('base64')}` };
}

/** A verifier key of the name given, of a fresh Ed25519 key. */
const freshKey = (name) => freshSigner(name).verifier;

/** RFC 9162 section 2.1.4.1: the consistency proof from m leaves to all of them. */
function consistency(m, leaves, whole = true) {
  if (m === leaves.length) return whole ? [] : [treeHash(leaves)];
  const k = split(leaves.length);
  return m <= k ? [...consistency(m, leaves.slice(0, k), whole), treeHash(leaves.slice(k))]
    : [...consistency(m - k, leaves.slice(k), false), treeHash(leaves.slice(0, k))];
}

const b64 = (hashes) => hashes.map((h) => h.toString('base64'));

// ---- the server, its rotations, and a proxy in front of it ----

describe(`a chain of log key rotations (${LEDGER})`, () => {
  const xdg = tempDir('receipt-rotation-');
  const cli = (args, env = {}) => spawnSync(RECEIPT_CLI, args, {
    encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: xdg, ...env }, timeout: 30000,
  });
  /** The CLI without blocking this process, which runs the proxy too. */
  const cliAsync = async (args) => {
    const r = await runCli(args, { env: { XDG_STATE_HOME: xdg } });
    return { status: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const keys = [];    // verifier keys, K1 first
  const signers = []; // signer key texts, K1 first
  const pins = {};    // audit states pinned at K1, copied before any rotation
  let srv;
  let firstReceipt;
  let proxy;
  let proxyUrl;
  let editKeys = null; // (document) => document, for GET /_receipt/log/keys
  let editCheckpoint = null; // (text) => text, for GET /_receipt/log/checkpoint
  let served = {}; // path => body the proxy serves instead of the server's

  const logKey = async () => (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
  const serverKeys = () => JSON.parse(fs.readFileSync(path.join(srv.stateDir, 'server-keys.json'), 'utf8'));

  function fetched() {
    const r = cli(['fetch', srv.url + '/blob.bin', '-o', path.join(xdg, 'blob.bin'), '--json', '-q']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  }

  /** Stops the server, rotates its log key, starts it, and logs a delivery
   * (whose batch appends the change and signs under both keys). */
  async function rotate() {
    const { root, stateDir, port } = srv;
    assert.equal((await srv.stop()).code, 0);
    const r = spawnSync(RECEIPTD, ['keys', 'rotate', '--state-dir', stateDir, 'log'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const kept = JSON.parse(fs.readFileSync(path.join(stateDir, 'server-keys.json'), 'utf8'));
    assert.equal(kept.log_previous, signers[signers.length - 1]);
    signers.push(kept.log);
    srv = await startServer({ root, stateDir, port });
    keys.push(await logKey());
    fetched();
  }

  /**
   * A tree of its own, as whoever still holds the first log key (replaced
   * three times since), or the key from (an index into keys), could make:
   * the log's first leaves as they are, then a change from that key to a
   * key of theirs (named name, or as the log), announced in a checkpoint
   * of that tree signed by both. Returns the tree's leaf hashes, the change
   * (a proof as GET keys serves one), the checkpoint and their key.
   */
  async function rogueSuccessor(size, from = 0, name = null) {
    const now = Number((await (await fetch(srv.url + '/_receipt/log/checkpoint')).text()).split('\n')[1]);
    const entries = Buffer.from(await (await fetch(`${srv.url}/_receipt/log/tile/entries/000.p/${now}`)).arrayBuffer());
    const leaves = Array.from({ length: size }, (_, i) => leafHash(entries.subarray(i * 34 + 2, i * 34 + 34)));
    const origin = keys[0].split('+')[0];
    const rogue = freshSigner(name || origin);
    const event = JSON.stringify({ key: rogue.verifier, previous: keys[from], time_ms: Date.now(), type: 'log_key', v: 1 });
    const salt = crypto.randomBytes(32);
    leaves.push(leafHash(sha256(salt, Buffer.from(event))));
    const checkpoint = signNote(`${origin}\n${leaves.length}\n${treeHash(leaves).toString('base64')}\n`, [signerOf(signers[from]), rogue.signer]);
    const change = { index: size, leaf: { salt: salt.toString('base64url'), event }, hashes: b64(inclusion(size, leaves)), checkpoint };
    return { leaves, change, checkpoint, signer: rogue.signer };
  }

  /** The bundle with its proofs made again in the rogue tree, the rogue
   * change added to its key changes, and the checkpoint given. */
  function remade(bundle, rogue, checkpoint) {
    const b = structuredClone(bundle);
    b.checkpoint = checkpoint;
    for (const e of [...b.events, ...b.keys.log_changes]) {
      e.hashes = b64(inclusion(e.index, rogue.leaves));
      e.batch.consistency = b64(consistency(Number(e.batch.checkpoint.split('\n')[1]), rogue.leaves));
    }
    const { checkpoint: announced, ...change } = rogue.change;
    b.keys.log_changes.push({ ...change, batch: { checkpoint: announced, consistency: [] } });
    return b;
  }

  /** The one pin file of an audit state directory (beside its lock). */
  function pinOf(logs) {
    const names = fs.readdirSync(logs).filter((n) => n.endsWith('.json'));
    assert.equal(names.length, 1, names.join(' '));
    return fs.readFileSync(path.join(logs, names[0]), 'utf8');
  }

  /** An audit state directory pinned at K1 (a copy of the one kept), under
   * the name older versions gave the pin: the first audit migrates it. */
  function pinnedAtFirst(url) {
    const dir = tempDir('receipt-logs-');
    const name = `${new URL(url).host.replace(/[^A-Za-z0-9.-]/g, '_')}__receipt_log.json`;
    fs.writeFileSync(path.join(dir, name), pins.first);
    return dir;
  }

  before(async () => {
    srv = await startServer({ files: { 'blob.bin': BIN } });
    keys.push(await logKey());
    signers.push(serverKeys().log);
    firstReceipt = fetched();
    const logs = tempDir('receipt-logs-');
    const r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    pins.first = pinOf(logs);
    assert.equal(JSON.parse(pins.first).key, keys[0]);
    proxy = http.createServer((req, res) => {
      if (served[req.url] !== undefined) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        res.end(served[req.url]);
        return;
      }
      const target = new URL(req.url, srv.url);
      fetch(target).then(async (up) => {
        let body = Buffer.from(await up.arrayBuffer());
        if (req.url === '/_receipt/log/keys' && editKeys !== null) body = Buffer.from(JSON.stringify(editKeys(JSON.parse(body))));
        if (req.url === '/_receipt/log/checkpoint' && editCheckpoint !== null) body = Buffer.from(editCheckpoint(body.toString()));

        res.writeHead(up.status, { 'Content-Type': up.headers.get('content-type') || 'application/octet-stream' });
        res.end(body);
      }).catch((e) => { res.writeHead(502); res.end(String(e)); });
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
  });
  after(async () => {
    if (proxy) proxy.close();
    if (srv) assert.equal((await srv.stop()).code, 0, srv.log());
  });

  test('audit follows two rotations, link by link, and pins the newest key', async () => {
    await rotate();
    await rotate();
    assert.equal(new Set(keys).size, 3);
    const logs = pinnedAtFirst(srv.url);
    let r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const report = JSON.parse(r.stdout);
    assert.equal(report.key_changed, true);
    assert.equal(report.key_changes, 2);
    assert.equal(report.key, keys[2]);
    assert.match(r.stderr, /its key changed twice/);
    assert.equal(JSON.parse(pinOf(logs)).key, keys[2]);
    pins.second = logs;
    // Go's sumdb/note and sumdb/tlog agree: each change's checkpoint opens
    // with both keys, its leaf is in it, and it is consistent with the newest.
    const go = spawnSync(logcheckProgram(), ['-url', srv.url, '-key', keys[2], '-chain', keys[0]], { encoding: 'utf8', input: '', timeout: 60000 });
    assert.equal(go.status, 0, go.stdout + go.stderr);
    assert.equal(go.stdout.split('\n').filter((l) => /^ok key change \d+ /.test(l)).length, 2, go.stdout);
    // Again: nothing more to follow.
    r = cli(['audit', srv.url, '--logs', logs]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).key_changed, false);
  });

  test('a forged link exits 5 and names the link', async () => {
    const served = await (await fetch(srv.url + '/_receipt/log/keys')).json();
    const changes = served.keys.map((p) => JSON.parse(p.leaf.event));
    assert.deepEqual(changes.map((e) => e.key), keys);
    const at = (k) => served.keys.findIndex((p) => JSON.parse(p.leaf.event).key === k);
    const size = Number((await (await fetch(srv.url + '/_receipt/log/checkpoint')).text()).split('\n')[1]);

    // A change announced in a checkpoint of another tree, signed by both
    // keys (a fork shown only to auditors who follow the chain): the leaf
    // is in that tree and both signatures hold, but it is not the log's.
    const forkedFirstLink = (doc) => {
      const p = doc.keys[at(keys[1])];
      const salt = Buffer.from(p.leaf.salt, 'base64url');
      const leaves = Array.from({ length: p.index + 1 }, () => crypto.randomBytes(32));
      leaves[p.index] = leafHash(sha256(salt, Buffer.from(p.leaf.event)));
      const origin = keys[0].split('+')[0];
      const text = `${origin}\n${leaves.length}\n${treeHash(leaves).toString('base64')}\n`;
      p.hashes = inclusion(p.index, leaves).map((h) => h.toString('base64'));
      p.checkpoint = signNote(text, [signerOf(signers[0]), signerOf(signers[1])]);
      return doc;
    };
    const cases = [
      ['the first link announced in a forked tree', forkedFirstLink,
        new RegExp(`key change 1 \\(leaf ${served.keys[at(keys[1])].index}, to key .*\\): the checkpoint that announced it \\(\\d+ leaves\\) is not consistent with the checkpoint trusted before it`)],
      ['the second link signed only by the new key', (doc) => {
        const p = doc.keys[at(keys[2])];
        p.checkpoint = withoutSignatureOf(p.checkpoint, keys[1]);
        return doc;
      }, /key change 2 \(leaf \d+, to key .*\): the checkpoint that announces it is not signed by the key it replaces/],
      ['the second link signed only by the old key', (doc) => {
        const p = doc.keys[at(keys[2])];
        p.checkpoint = withoutSignatureOf(p.checkpoint, keys[2]);
        return doc;
      }, /key change 2 .*: the checkpoint that announces it is not signed by the new key/],
      ['the first link left out: the second replaces a key never trusted', (doc) => {
        doc.keys.splice(at(keys[1]), 1);
        return doc;
      }, new RegExp(`key change 1 \\(leaf \\d+, to key .*\\): it replaces key ${keys[1].replace(/[+/]/g, '\\$&')}, which this audit never trusted \\(the key trusted then is ${keys[0].replace(/[+/]/g, '\\$&')}\\)`)],
      ['a change leaf that is not in the tree', (doc) => {
        const p = doc.keys[at(keys[1])];
        p.leaf.salt = crypto.randomBytes(32).toString('base64url');
        return doc;
      }, new RegExp(`its key change ${at(keys[1]) + 1} \\(GET keys\\) is not proved: leaf ${served.keys[at(keys[1])].index} .*is not in the tree`)],
      ['the key history without the pinned key', (doc) => {
        doc.keys = doc.keys.filter((p) => JSON.parse(p.leaf.event).key !== keys[0]);
        return doc;
      }, /its key changes do not name the pinned key/],
    ];
    try {
      for (const [name, edit, message] of cases) {
        editKeys = edit;
        const logs = pinnedAtFirst(proxyUrl);
        const pinned = pinOf(logs);
        const r = await cliAsync(['audit', proxyUrl, '--logs', logs]);
        assert.equal(r.status, 5, `${name}: ${r.stderr}${r.stdout}`);
        assert.match(r.stderr, message, name);
        // Nothing is pinned from a forged chain.
        assert.equal(pinOf(logs), pinned, name);
      }
      // Through the proxy unedited, the same chain is followed.
      editKeys = null;
      const r = await cliAsync(['audit', proxyUrl, '--logs', pinnedAtFirst(proxyUrl)]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).size >= size, true);
    } finally {
      editKeys = null;
    }
  });

  test('a third rotation: followed from the first key and from the second pin', async () => {
    await rotate();
    let r = cli(['audit', srv.url, '--logs', pinnedAtFirst(srv.url)]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).key_changes, 3);
    assert.equal(JSON.parse(r.stdout).key, keys[3]);
    r = cli(['audit', srv.url, '--logs', pins.second]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).key_changes, 1);
    assert.match(r.stderr, /its key changed once/);
  });

  test('verify: a proof older than the key given names the key that signed it and what to pass', async () => {
    const jwks = ['--jwks', srv.url + '/_receipt/jwks.json'];
    const file = firstReceipt.receipt_file;
    let r = cli(['verify', file, ...jwks, '--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint is signed by another key of log ${keys[0].split('+')[0].replace(/[+/.]/g, '\\$&')} \\(key ID ${keys[0].split('+')[1]}\\), not by the key given`));
    assert.match(r.stderr, /--log-key/);
    assert.match(r.stderr, /receipt verify --bundle/);
    // The keys an auditor knows the log had: any of them may sign.
    r = cli(['verify', file, ...jwks, '--log-key', keys[3], '--log-key', keys[0]]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /signed by one of the log keys given/);
    r = cli(['verify', file, ...jwks, '--log-key', keys[1], '--log-key', keys[2]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /not by the keys given/);
    // Keys of two logs together: refused, named.
    r = cli(['verify', file, ...jwks, '--log-key', keys[0], '--log-key', freshKey('other.example/_receipt/log')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /the log keys given are of two logs/);
  });

  test('verify --online: the proof against the log now, keys followed along its changes', async () => {
    const jwks = ['--jwks', srv.url + '/_receipt/jwks.json'];
    const file = firstReceipt.receipt_file;
    // From the newest key back to the proof's, and from the first forwards.
    for (const k of [keys[3], keys[0]]) {
      const r = await cliAsync(['verify', file, ...jwks, '--log-key', k, '--online']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /its checkpoint signed by a log key given or one that the log's key changes link to it \(3 followed\), and consistent with the log's newest checkpoint, of \d+ leaves/);
    }
    let r = await cliAsync(['verify', file, ...jwks, '--online']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--online needs --log-key/);
    r = await cliAsync(['verify', '--bundle', file, '--log-key', keys[3], '--online']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /verify --bundle is checked offline/);
    // A key the log never had reaches nothing: its newest checkpoint is not the key's.
    r = await cliAsync(['verify', file, ...jwks, '--log-key', freshKey(keys[0].split('+')[0]), '--online']);
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, /its checkpoint is signed by another key of log .*, nor by a key that the log's key changes link to it/);
    // Through a proxy (--log URL: a mirror) that serves a forged change, or
    // a checkpoint that its tiles do not make: exit 5, named.
    const at = (doc, k) => doc.keys.findIndex((p) => JSON.parse(p.leaf.event).key === k);
    try {
      editKeys = (doc) => {
        const p = doc.keys[at(doc, keys[2])];
        p.checkpoint = withoutSignatureOf(p.checkpoint, keys[1]);
        return doc;
      };
      r = await cliAsync(['verify', file, ...jwks, '--log-key', keys[3], '--log', proxyUrl]);
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, /its key change 3 \(GET keys\): the checkpoint that announces it is not signed by the key it replaces/);
      editKeys = null;
      editCheckpoint = (text) => {
        const [origin, size] = text.split('\n');
        return signNote(`${origin}\n${size}\n${crypto.randomBytes(32).toString('base64')}\n`, [signerOf(signers[3])]);
      };
      r = await cliAsync(['verify', file, ...jwks, '--log-key', keys[3], '--log', proxyUrl]);
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, /its tiles do not make the tree of \d+ leaves that its checkpoint signs/);
      // The log's tree as it is, signed by its first key alone, which its
      // first change retired: whoever still holds a retired key could sign
      // any tree with it, so the keys reached backwards sign no later one.
      editCheckpoint = (text) => signNote(`${text.split('\n\n')[0]}\n`, [signerOf(signers[0])]);
      r = await cliAsync(['verify', file, ...jwks, '--log-key', keys[3], '--log', proxyUrl]);
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, new RegExp(`its newest checkpoint \\(\\d+ leaves\\) is not signed by ${keys[3].replace(/[+/.]/g, '\\$&')}, its key since its last key change: a key that was replaced signs no later tree`));
      // A successor of the first key announced again, in a tree of its own
      // that extends the log, its tiles served: a second history of the
      // log's keys, which the backward links must not reach.
      const size = Number((await (await fetch(srv.url + '/_receipt/log/checkpoint')).text()).split('\n')[1]);
      const rogue = await rogueSuccessor(size);
      editCheckpoint = () => rogue.checkpoint;
      editKeys = (doc) => { doc.keys.push(rogue.change); return doc; };
      served = { [`/_receipt/log/tile/0/000.p/${rogue.leaves.length}`]: Buffer.concat(rogue.leaves) };
      r = await cliAsync(['verify', file, ...jwks, '--log-key', keys[3], '--log', proxyUrl]);
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, new RegExp(`its key change 5 \\(GET keys, leaf ${size}\\) replaces another key than the log's key then, ${keys[3].replace(/[+/.]/g, '\\$&')}: a second history of its keys`));
    } finally {
      editKeys = null;
      editCheckpoint = null;
      served = {};
    }
    r = await cliAsync(['verify', file, ...jwks, '--log-key', keys[3], '--log', proxyUrl]);
    assert.equal(r.status, 0, r.stderr);
  });

  test('a bundle from before three rotations verifies offline with the first key or the newest', async () => {
    const made = spawnSync(RECEIPTD, ['evidence', '--state-dir', srv.stateDir, ...ledgerArgs(srv.stateDir), firstReceipt.delivery], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const bundle = JSON.parse(made.stdout);
    assert.equal(bundle.keys.log_changes.filter((c) => JSON.parse(c.leaf.event).previous).length, 3);
    const file = path.join(xdg, 'bundle.json');
    const offline = { http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', ALL_PROXY: 'http://127.0.0.1:9' };
    const verify = (b, args) => {
      fs.writeFileSync(file, JSON.stringify(b));
      return cli(['verify', '--bundle', file, ...args], offline);
    };
    for (const k of keys) {
      const r = verify(bundle, ['--log-key', k]);
      assert.equal(r.status, 0, `${k}: ${r.stderr}`);
    }
    // Its checkpoint signed by the first key alone, which the first change
    // retired long before that tree: refused, whatever the bundle's key
    // history says of that key's time in use.
    const resigned = structuredClone(bundle);
    resigned.checkpoint = signNote(`${bundle.checkpoint.split('\n\n')[0]}\n`, [signerOf(signers[0])]);
    resigned.keys.log.forEach((k) => { k.until_ms = null; });
    let r = verify(resigned, ['--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint \\(\\d+ leaves\\) is not signed by ${keys[3].replace(/[+/.]/g, '\\$&')}, the log's key since the last key change in the bundle: a key that was replaced signs no later tree`));
    // A successor of the first key announced again, in a tree of its own
    // that extends the log up to the bundle's, with the bundle's proofs
    // made again in it: not followed, and its key signs nothing.
    const size = Number(bundle.checkpoint.split('\n')[1]);
    const rogue = await rogueSuccessor(size);
    r = verify(remade(bundle, rogue, rogue.checkpoint), ['--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint \\(${size + 1} leaves\\) is not signed by ${keys[3].replace(/[+/.]/g, '\\$&')}, the log's key since`));
    // A successor of the current key that is a key of another log (which
    // audit and --online refuse): not followed, so the checkpoint that it
    // alone signs is not the log's.
    const other = await rogueSuccessor(size, 3, 'other.example/_receipt/log');
    r = verify(remade(bundle, other, signNote(`${other.checkpoint.split('\n\n')[0]}\n`, [other.signer])), ['--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint does not open with the log's key .*; key change 5 of the bundle was not followed: leaf ${size} names a key of another log than ${keys[0].split('+')[0].replace(/[/.]/g, '\\$&')}$`, 'm'));
    // Without made_ms, the bundle's checkpoint's key could not be checked
    // against its time in use: refused.
    const undated = structuredClone(bundle);
    delete undated.made_ms;
    r = verify(undated, ['--log-key', keys[0]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /it lacks a member \(delivery, origin, made_ms,/);
    // A link of the chain taken out: the key history ends at the gap, the
    // change after it is not followed and named, and the bundle's
    // checkpoint (signed by the newest key) does not open with the first
    // key, nor is it signed by the key the history ends at.
    const broken = structuredClone(bundle);
    broken.keys.log_changes = broken.keys.log_changes.filter((c) => JSON.parse(c.leaf.event).key !== keys[2]);
    const gap = `key change \\d+ of the bundle was not followed: it replaces another key than the log's key at leaf \\d+, ${keys[1].replace(/[+/.]/g, '\\$&')}$`;
    r = verify(broken, ['--log-key', keys[0]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint is signed by another key of log \\S+ \\(key ID ${keys[3].split('+')[1]}\\), not by the keys? given, nor by a key that the bundle's key changes link to them; ${gap}`, 'm'));
    r = verify(broken, ['--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`its checkpoint \\(\\d+ leaves\\) is not signed by ${keys[1].replace(/[+/.]/g, '\\$&')}, the log's key since the last key change in the bundle: a key that was replaced signs no later tree; ${gap}`, 'm'));
    // A link whose checkpoint lost the old key's signature is not followed.
    const unsigned = structuredClone(bundle);
    const link = unsigned.keys.log_changes.find((c) => JSON.parse(c.leaf.event).key === keys[1]);
    link.batch.checkpoint = withoutSignatureOf(link.batch.checkpoint, keys[0]);
    r = verify(unsigned, ['--log-key', keys[3]]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /event 1: its checkpoint is signed by another key .*; key change 2 of the bundle was not followed: the checkpoint that announced leaf \d+ is not signed by the key it replaces/);
  });

  test('audit: a checkpoint with many cosignatures (witnesses) is kept, and audited again', async () => {
    // Signatures by keys the audit does not know are ignored, as C2SP
    // signed-note says; the checkpoint kept must still be read back.
    const witnesses = Array.from({ length: 24 }, (_, i) => {
      const name = `witness-${i}.example/${'w'.repeat(80)}`;
      const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
      const blob = Buffer.concat([Buffer.from([1]), publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)]);
      return { name, id: sha256(Buffer.from(name + '\n'), blob).subarray(0, 4), key: privateKey };
    });
    try {
      editCheckpoint = (text) => `${text}${signNote(`${text.split('\n\n')[0]}\n`, witnesses).split('\n\n')[1]}`;
      const logs = tempDir('receipt-logs-');
      for (const first of [true, false]) {
        const r = await cliAsync(['audit', proxyUrl, '--logs', logs]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).first_use, first);
      }
      const kept = JSON.parse(pinOf(logs));
      assert.ok(kept.checkpoint.length > 4096, String(kept.checkpoint.length));
    } finally {
      editCheckpoint = null;
    }
  });

  test('verify --online: a proof is not consistent with a log begun again under the same keys', async () => {
    const { root, stateDir, port } = srv;
    assert.equal((await srv.stop()).code, 0);
    srv = null;
    const fresh = LEDGER === 'postgresql' ? pgUrl(pgCreateDatabase('rotation_fork'))
      : `sqlite:${path.join(tempDir('receipt-fork-'), 'ledger.sqlite')}`;
    srv = await startServer({ root, stateDir, port, args: ['--ledger', fresh] });
    for (let i = 0; i < 3; i++) fetched();
    const r = await cliAsync(['verify', firstReceipt.receipt_file, '--jwks', srv.url + '/_receipt/jwks.json',
      '--log-key', keys[3], '--log-key', keys[0], '--online']);
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, /its checkpoint \(\d+ leaves\) is not consistent with the newest of the log at .* \(\d+\): the log was rewritten or forked/);
  });
});
