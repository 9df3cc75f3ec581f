// The evidence log as an outside auditor reads it: every event's text is
// RFC 8785 canonical JSON (checked with an independent canonicaliser:
// ECMAScript's own, which the RFC builds on), its commitment is the entry
// the public entry bundles hold at its index, and the log's origin is the
// public URL's host and path as a URL parser gives them.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { startServer, LEDGER } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, postConfirm, sha256b64url } from './lib/client.mjs';

const FILES = {
  'a.txt': 'hello\n',
  'café/naïve €.txt': 'unicode names\n',
  'docs/terms.html': '<html><body><p>Terms</p></body></html>\n',
};
// User agents with every kind of character an event's text must write:
// escapes ('"', '\\', controls), DEL and non-ASCII as they are, invalid
// UTF-8 replaced by U+FFFD.
const AGENTS = [
  Buffer.from('tab\there "quoted" back\\slash'),
  Buffer.from('del\x7f and \x01\x1f controls'),
  Buffer.from('utf-8 é — 😀 דּ'),
  Buffer.from([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0x20, 0xed, 0xa0, 0x80]),
];

/** RFC 8785: ECMAScript's JSON.stringify of values, object members sorted by
 * UTF-16 code units (which is how ECMAScript compares strings). */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A GET whose header bytes are given as they are (fetch refuses non-Latin-1). */
function rawGet(port, target, agent) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    sock.on('data', (d) => (data = Buffer.concat([data, d])));
    sock.on('end', () => resolve(data.toString('latin1')));
    sock.on('error', reject);
    sock.write(Buffer.concat([
      Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: `), agent,
      Buffer.from('\r\nConnection: close\r\n\r\n'),
    ]));
  });
}

describe(`the evidence log read from outside (${LEDGER})`, () => {
  let srv;
  before(async () => {
    srv = await startServer({ files: FILES, args: ['--public-url', 'https://Audit.Example:443/Sub/'] });
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('events are canonical JSON, their commitments are the served entries, the origin is the URL\'s', async () => {
    const jwks = await fetchJwks(srv.url);
    const confirmed = [];
    for (let i = 0; i < 24; i++) {
      const client = await newClient();
      const target = i % 2 ? '/a.txt' : '/caf%C3%A9/na%C3%AFve%20%E2%82%AC.txt';
      const res = await fetch(srv.url + target, { headers: { 'Receipt-Client-Key': client.header } });
      const body = new Uint8Array(await res.arrayBuffer());
      const plugin = (await openPlugin(client, jwks, res.headers.get('receipt-plugin'))).payload;
      const sha = i % 3 === 0 ? await sha256b64url(new Uint8Array([1])) : await sha256b64url(body);
      const answer = await postConfirm(srv.url + '/_receipt/confirm', client,
        await sealConfirmation(client, jwks, confirmation(plugin, { sha256: sha, size: body.length })));
      assert.equal(answer.status, 200, answer.text);
      confirmed.push(answer.json);
    }
    const issued = [];
    for (const agent of AGENTS) {
      const raw = await rawGet(srv.port, '/docs/terms.html', agent);
      assert.match(raw, /^HTTP\/1\.1 200/);
      issued.push(/\r\nReceipt-Delivery: ([0-9a-f-]{36})\r\n/i.exec(raw)[1]);
    }

    const key = (await (await fetch(srv.url + '/_receipt/log/key')).text()).trim();
    const origin = 'audit.example/Sub/_receipt/log';
    assert.equal(key.split('+')[0], origin, 'host in lower case, no default port, the path kept');
    const checkpoint = await srv.until(async () => {
      const text = await (await fetch(srv.url + '/_receipt/log/checkpoint')).text();
      return Number(text.split('\n')[1]) >= 1 + 2 * confirmed.length + issued.length ? text : null;
    });
    assert.ok(checkpoint, 'every event is logged');
    assert.equal(checkpoint.split('\n')[0], origin);

    // The entries of the log as anyone can read them.
    const size = Number(checkpoint.split('\n')[1]);
    const entries = [];
    for (let n = 0; n * 256 < size; n++) {
      const width = Math.min(256, size - n * 256);
      const name = `tile/entries/${String(n).padStart(3, '0')}${width < 256 ? `.p/${width}` : ''}`;
      const res = await fetch(`${srv.url}/_receipt/log/${name}`);
      assert.equal(res.status, 200, name);
      const bytes = Buffer.from(await res.arrayBuffer());
      for (let at = 0; at < bytes.length; at += 2 + bytes.readUInt16BE(at)) {
        assert.equal(bytes.readUInt16BE(at), 32, 'a commitment per entry');
        entries.push(bytes.subarray(at + 2, at + 34).toString('hex'));
      }
    }
    assert.equal(entries.length, size);

    const auth = { headers: { Authorization: `Bearer ${srv.adminToken()}` } };
    const agents = new Set();
    let events = 0;
    for (const delivery of [...confirmed.map((a) => a.delivery), ...issued]) {
      const res = await fetch(`${srv.adminUrl}/api/deliveries/${delivery}/evidence`, auth);
      assert.equal(res.status, 200);
      const bundle = await res.json();
      assert.equal(bundle.origin, origin);
      for (const e of bundle.events) {
        const text = e.leaf.event;
        const parsed = JSON.parse(text);
        assert.equal(canonical(parsed), text, `leaf ${e.index} is canonical`);
        assert.equal(parsed.delivery, delivery);
        if (parsed.user_agent) agents.add(parsed.user_agent);
        const commitment = crypto.createHash('sha256')
          .update(Buffer.concat([Buffer.from(e.leaf.salt, 'base64url'), Buffer.from(text, 'utf8')])).digest('hex');
        assert.equal(entries[e.index], commitment, `leaf ${e.index} is the served entry`);
        events++;
      }
    }
    assert.equal(events, 2 * confirmed.length + issued.length);
    for (const agent of ['tab\there "quoted" back\\slash', 'del\x7f and \x01\x1f controls', 'utf-8 é — 😀 דּ',
      'bad \ufffd\ufffd \ufffd\ufffd\ufffd']) assert.ok(agents.has(agent), JSON.stringify(agent));
    // The confirmation's own leaf, as its answer gave it, is the same text.
    for (const a of confirmed) {
      assert.equal(canonical(JSON.parse(a.proof.leaf.event)), a.proof.leaf.event);
      assert.equal(JSON.parse(a.proof.leaf.event).type, a.status);
    }
  });
});
