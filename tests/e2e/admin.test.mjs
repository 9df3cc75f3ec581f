// The admin listener: token, JSON API against a seeded ledger (every figure
// computed here from the seed), exports, metrics after real traffic, and
// `receiptd report` against the same seed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, repoRoot, RECEIPTD, freePort, ledgerArgs } from './lib/server.mjs';
import { newClient, fetchJwks, openPlugin, confirmation, sealConfirmation, postConfirm } from './lib/client.mjs';
import {
  seedRows, writeSeed, item, newestFirst, expectedSummary, expectedContents, expectedClients,
  parseCsv, CSV_COLUMNS, csvFields, HOSTILE_PATH, CLIENTS, KINDS,
} from './lib/seed.mjs';

const rows = seedRows();
const byNewest = newestFirst(rows);

/** Starts a server, stops it, writes the seed into its ledger, starts it again. */
export async function seededServer() {
  const first = await startServer({ files: { 'a.html': '<p>a</p>' } });
  assert.equal((await first.stop()).code, 0, first.log());
  writeSeed(first, rows);
  return startServer({ root: first.root, stateDir: first.stateDir });
}

function client(srv) {
  const token = srv.adminToken();
  const get = (p, headers = {}) => fetch(srv.adminUrl + p, { headers: { Authorization: `Bearer ${token}`, ...headers } });
  const json = async (p) => {
    const res = await get(p);
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  };
  return { token, get, json };
}

describe('admin API on a seeded ledger', () => {
  let srv;
  let api;
  before(async () => {
    srv = await seededServer();
    api = client(srv);
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('the token file is private and its value is 32 random bytes', () => {
    const st = fs.statSync(path.join(srv.stateDir, 'admin-token'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.match(api.token, /^[A-Za-z0-9_-]{43}$/);
  });

  test('every API route needs the token; the page and /metrics do not', async () => {
    for (const p of ['/api/summary', '/api/deliveries', '/api/contents', '/api/clients', '/api/series',
      `/api/deliveries/${rows[0].delivery}`, '/api/nothing']) {
      const res = await fetch(srv.adminUrl + p);
      assert.equal(res.status, 401, p);
      assert.match(res.headers.get('www-authenticate'), /^Bearer /);
      const body = await res.json();
      assert.equal(body.error, 'unauthorized');
      assert.equal(typeof body.message, 'string');
    }
    const wrong = [
      `Bearer ${api.token.slice(0, -1)}${api.token.endsWith('A') ? 'B' : 'A'}`, // last character differs
      `Bearer ${api.token.startsWith('A') ? 'B' : 'A'}${api.token.slice(1)}`, // first character differs
      `Bearer ${api.token}x`, `Bearer ${api.token.slice(0, 20)}`, 'Bearer', `Basic ${api.token}`, api.token,
      `Bearer ${'x'.repeat(600)}`,
    ];
    for (const h of wrong) {
      const res = await fetch(srv.adminUrl + '/api/summary', { headers: { Authorization: h } });
      assert.equal(res.status, 401, h);
      assert.equal((await res.json()).error, h.startsWith('Bearer') || h.startsWith('Basic') || h === api.token ? 'invalid_token' : 'unauthorized');
    }
    const lower = await fetch(srv.adminUrl + '/api/summary', { headers: { Authorization: `bearer ${api.token}` } });
    assert.equal(lower.status, 200, 'the scheme is case-insensitive');
    for (const p of ['/', '/dashboard.js', '/dashboard.css', '/metrics']) {
      const res = await fetch(srv.adminUrl + p);
      assert.equal(res.status, 200, p);
      await res.arrayBuffer();
    }
    const page = await fetch(srv.adminUrl + '/');
    assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
    assert.doesNotMatch(await page.text(), /<script>|<script [^>]*>[^<]/, 'no inline script');
  });

  test('the token is compared in constant time', () => {
    const src = fs.readFileSync(path.join(repoRoot, 'daemon/admin.c'), 'utf8');
    const fn = /static bool token_matches[\s\S]*?\n}\n/.exec(src);
    assert.ok(fn, 'token_matches exists');
    assert.match(fn[0], /CRYPTO_memcmp\(/);
    assert.doesNotMatch(fn[0], /\b(strcmp|strncmp|memcmp)\(/);
    assert.doesNotMatch(src, /\b(strcmp|strncmp|memcmp)\([^)]*token/);
  });

  test('summary', async () => {
    const s = await api.json('/api/summary');
    const want = expectedSummary(rows);
    for (const k of Object.keys(want)) assert.deepEqual(s[k], want[k], k);
    assert.ok(want.confirmed > 0 && want.corrupted > 0 && want.bound > 0 && want.pending > want.bound);
    for (const k of KINDS) assert.ok(want.kinds[k].deliveries > 0, `the seed has ${k} rows`);
  });

  test('contents: counts, rates and nearest-rank percentiles', async () => {
    const got = await api.json('/api/contents');
    assert.equal(got.truncated, false);
    assert.deepEqual(got.items, expectedContents(rows));
    assert.equal(got.items.filter((c) => c.content === '/docs/terms.html').length, 2, 'two versions');
  });

  test('clients', async () => {
    const got = await api.json('/api/clients');
    assert.deepEqual(got.items, expectedClients(rows));
    assert.equal(got.items.length, CLIENTS.length);
  });

  test('deliveries: the first page, newest first', async () => {
    const page = await api.json('/api/deliveries?limit=5');
    assert.deepEqual(page.items, byNewest.slice(0, 5).map(item));
    assert.equal(typeof page.next_cursor, 'string');
  });

  test('cursor pagination walks every row once, at every page size boundary', async () => {
    for (const limit of [1, 7, rows.length - 1, rows.length, rows.length + 1, 1000]) {
      const seen = [];
      let cursor = null;
      let pages = 0;
      do {
        const page = await api.json(`/api/deliveries?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(page.items.length <= limit);
        seen.push(...page.items);
        cursor = page.next_cursor;
        pages++;
        assert.ok(pages <= rows.length + 1);
      } while (cursor);
      assert.deepEqual(seen, byNewest.map(item), `limit ${limit}`);
      assert.equal(pages, Math.ceil(rows.length / limit), `limit ${limit}: pages`);
    }
  });

  test('filters and their boundaries', async () => {
    const check = async (qs, want) => {
      const page = await api.json(`/api/deliveries?limit=1000&${qs}`);
      assert.deepEqual(page.items, newestFirst(want).map(item), qs);
      assert.equal(page.next_cursor, null);
    };
    await check(`content=${encodeURIComponent('/docs/terms.html')}`, rows.filter((r) => r.content === '/docs/terms.html'));
    await check(`content=${encodeURIComponent(HOSTILE_PATH)}`, rows.filter((r) => r.content === HOSTILE_PATH));
    await check('content=%2Fnone', []);
    await check(`client=${CLIENTS[1]}`, rows.filter((r) => r.client === CLIENTS[1]));
    for (const s of ['issued', 'bound', 'confirmed', 'corrupted']) await check(`status=${s}`, rows.filter((r) => r.status === s));
    await check('status=pending', rows.filter((r) => r.status === 'issued' || r.status === 'bound'));
    await check('status=confirmed,corrupted', rows.filter((r) => r.status === 'confirmed' || r.status === 'corrupted'));
    for (const k of KINDS) await check(`kind=${k}`, rows.filter((r) => r.kind === k));
    await check('kind=page,download', rows.filter((r) => r.kind === 'page' || r.kind === 'download'));
    await check('kind=page&status=confirmed', rows.filter((r) => r.kind === 'page' && r.status === 'confirmed'));
    const since = rows[10].issued_at_ms;
    const until = rows[20].issued_at_ms;
    await check(`since=${since}`, rows.filter((r) => r.issued_at_ms >= since)); // inclusive
    await check(`until=${until}`, rows.filter((r) => r.issued_at_ms < until)); // exclusive
    await check(`since=${since}&until=${until}`, rows.slice(10, 20));
    await check(`since=${since + 1}&until=${until + 1}`, rows.slice(11, 21));
    const iso = new Date(since).toISOString();
    await check(`since=${encodeURIComponent(iso)}`, rows.filter((r) => r.issued_at_ms >= since));
    await check('since=2025-11-21', rows.filter((r) => r.issued_at_ms >= Date.UTC(2025, 10, 21)));
    await check(`since=${encodeURIComponent('2025-11-21T01:00:00+01:00')}`, rows.filter((r) => r.issued_at_ms >= Date.UTC(2025, 10, 21)));
    await check(`status=corrupted&content=${encodeURIComponent('/fw/image.bin')}&client=${CLIENTS[0]}`,
      rows.filter((r) => r.status === 'corrupted' && r.content === '/fw/image.bin' && r.client === CLIENTS[0]));
    // A filter that pages: the cursor keeps the filter's order.
    const confirmed = newestFirst(rows.filter((r) => r.status === 'confirmed'));
    const p1 = await api.json('/api/deliveries?status=confirmed&limit=3');
    const p2 = await api.json(`/api/deliveries?status=confirmed&limit=3&cursor=${p1.next_cursor}`);
    assert.deepEqual([...p1.items, ...p2.items], confirmed.slice(0, 6).map(item));
  });

  test('bad parameters are 400 with a JSON error', async () => {
    for (const qs of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'cursor=notacursor', 'cursor=' + 'A'.repeat(48),
      'status=done', 'since=yesterday', 'until=2025-13-01', 'since=2025-11-21&until=2025-11-20', 'client=short',
      'until=0', 'kind=browser', 'kind=page,,x', 'kind=Page']) {
      const res = await api.get(`/api/deliveries?${qs}`);
      assert.equal(res.status, 400, qs);
      const body = await res.json();
      assert.match(body.error, /^bad_/, qs);
    }
  });

  test('one delivery, in detail', async () => {
    const r = rows.find((x) => x.status === 'corrupted');
    const d = await api.json(`/api/deliveries/${r.delivery}`);
    assert.deepEqual(item({ ...d, bound_at_ms: undefined, receipt: undefined, user_agent: undefined, bound_addr: undefined, confirm_addr: undefined, received: undefined, nodes: undefined }),
      { ...item(r), user_agent: undefined, bound_addr: undefined, confirm_addr: undefined, received: undefined, nodes: undefined });
    assert.deepEqual(d.nodes, { issued: null, bound: null, confirmed: null }, 'seeded rows name no node');
    assert.equal(d.receipt, r.receipt);
    assert.equal(d.bound_at_ms, r.bound_at_ms);
    assert.equal(d.user_agent, 'seed/1.0');
    assert.equal(d.received.size, r.size);
    assert.notEqual(d.received.sha256, r.sha256);
    const issued = rows.find((x) => x.status === 'issued');
    const di = await api.json(`/api/deliveries/${issued.delivery}`);
    assert.equal(di.receipt, null);
    assert.equal(di.received, null);
    assert.equal(di.client, null);
    assert.equal((await api.get('/api/deliveries/01900000-0000-7000-8000-000000000000')).status, 404);
    assert.equal((await api.get('/api/deliveries/nope')).status, 404);
  });

  test('CSV export: every matching row, hostile paths quoted', async () => {
    const res = await api.get('/api/deliveries?limit=2', { Accept: 'text/csv' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/csv/);
    const text = await res.text();
    const table = parseCsv(text);
    assert.deepEqual(table[0], CSV_COLUMNS);
    assert.deepEqual(table.slice(1), byNewest.map(csvFields), 'all rows, the limit does not apply');
    assert.ok(text.includes('"/odd,""quoted""\nname;\t=cmd.html"'), 'quoted, quotes doubled');
    const only = parseCsv(await (await api.get(`/api/deliveries?content=${encodeURIComponent(HOSTILE_PATH)}`, { Accept: 'text/csv' })).text());
    assert.deepEqual(only.slice(1), newestFirst(rows.filter((r) => r.content === HOSTILE_PATH)).map(csvFields));
    assert.ok(only.length > 2);
  });

  test('NDJSON export', async () => {
    const res = await api.get('/api/deliveries?status=pending', { Accept: 'application/x-ndjson' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await res.text()).split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((l) => JSON.parse(l)), newestFirst(rows.filter((r) => r.status === 'issued' || r.status === 'bound')).map(item));
  });

  test('series: every delivery and confirmation in one bucket', async () => {
    const s = await api.json('/api/series?buckets=24');
    assert.ok(s.buckets.length <= 25 && s.buckets.length > 0);
    const sum = (k) => s.buckets.reduce((a, b) => a + b[k], 0);
    assert.equal(sum('deliveries'), rows.length);
    assert.equal(sum('confirmed'), rows.filter((r) => r.status === 'confirmed').length);
    assert.equal(sum('corrupted'), rows.filter((r) => r.status === 'corrupted').length);
    for (const [i, b] of s.buckets.entries()) assert.equal(b.t, s.since_ms + i * s.bucket_ms);
    for (const r of rows) {
      const b = s.buckets[Math.floor((r.issued_at_ms - s.since_ms) / s.bucket_ms)];
      assert.ok(b && b.deliveries > 0);
    }
  });

  test('other methods and paths', async () => {
    const res = await fetch(srv.adminUrl + '/api/summary', { method: 'POST', headers: { Authorization: `Bearer ${api.token}` }, body: 'x' });
    assert.equal(res.status, 405);
    assert.equal((await fetch(srv.adminUrl + '/nothing')).status, 404);
  });
});

describe('metrics after real traffic', () => {
  let srv;
  before(async () => {
    srv = await startServer({ files: { 'doc.txt': 'hello metrics' }, args: ['--node-id', 'node-7'] });
  });
  after(async () => assert.equal((await srv.stop()).code, 0, srv.log()));

  test('Prometheus exposition of deliveries, confirmations, ledger and responses', async () => {
    const jwks = await fetchJwks(srv.url);
    const receipts = [];
    for (const sha of ['good', 'bad']) {
      const c = await newClient();
      const res = await fetch(srv.url + '/doc.txt', { headers: { 'Receipt-Client-Key': c.header } });
      const bytes = Buffer.from(await res.arrayBuffer());
      const { payload } = await openPlugin(c, jwks, res.headers.get('receipt-plugin'));
      const digest = sha === 'good' ? (await import('node:crypto')).createHash('sha256').update(bytes).digest('base64url') : 'A'.repeat(43);
      const out = await postConfirm(payload.server.confirm, c, await sealConfirmation(c, jwks, confirmation(payload, { sha256: digest })));
      assert.equal(out.status, 200, out.text);
      receipts.push({ id: payload.delivery, ...out.json });
    }
    assert.equal((await fetch(srv.url + '/missing')).status, 404);

    const token = srv.adminToken();
    const d = await (await fetch(`${srv.adminUrl}/api/deliveries/${receipts[0].id}`, { headers: { Authorization: `Bearer ${token}` } })).json();
    assert.equal(d.status, 'confirmed');
    assert.equal(d.receipt, receipts[0].receipt, 'the receipt the client got');
    assert.deepEqual(d.nodes, { issued: 'node-7', bound: 'node-7', confirmed: 'node-7' });
    const s = await (await fetch(`${srv.adminUrl}/api/summary`, { headers: { Authorization: `Bearer ${token}` } })).json();
    assert.deepEqual([s.deliveries, s.confirmed, s.corrupted, s.confirmation_rate], [2, 1, 1, 1]);

    const res = await fetch(srv.adminUrl + '/metrics');
    assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (line) => {
      const m = text.split('\n').find((l) => l.startsWith(line + ' '));
      assert.ok(m, `${line} present`);
      return Number(m.slice(line.length + 1));
    };
    assert.equal(value('receiptd_deliveries_total'), 2);
    assert.equal(value('receiptd_confirmations_total{status="confirmed"}'), 1);
    assert.equal(value('receiptd_confirmations_total{status="corrupted"}'), 1);
    assert.equal(value('receiptd_http_responses_total{route="content",code="200"}'), 2);
    assert.equal(value('receiptd_http_responses_total{route="content",code="404"}'), 1);
    assert.equal(value('receiptd_http_responses_total{route="confirm",code="200"}'), 2);
    assert.equal(value('receiptd_ledger_queue_depth'), 0);
    for (const h of ['receiptd_ledger_batch_size', 'receiptd_ledger_commit_seconds',
      'receiptd_ledger_issue_lag_seconds']) {
      assert.ok(text.includes(`# TYPE ${h} histogram\n`), h);
      const buckets = text.split('\n').filter((l) => l.startsWith(`${h}_bucket{`));
      const counts = buckets.map((l) => Number(l.split(' ')[1]));
      assert.ok(counts.every((c, i) => i === 0 || c >= counts[i - 1]), `${h} cumulative`);
      assert.match(buckets.at(-1), /le="\+Inf"/);
      assert.equal(value(`${h}_count`), counts.at(-1));
      assert.ok(counts.at(-1) >= 1);
      assert.ok(value(`${h}_sum`) >= 0);
    }
    assert.ok(value('receiptd_ledger_batch_size_sum') >= 4, 'two issues and two confirmations committed');
    assert.equal(value('receiptd_ledger_issue_lag_seconds_count'), 2, 'one lag sample per issuance row');
    // Every sample's family has HELP and TYPE first.
    const families = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
    for (const l of text.split('\n').filter((x) => x && !x.startsWith('#'))) {
      const name = l.split(/[{ ]/)[0].replace(/_(bucket|sum|count)$/, '');
      assert.ok(families.has(name) || families.has(l.split(/[{ ]/)[0]), `TYPE for ${l}`);
      assert.match(l, /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$/, l);
    }
  });
});

describe('admin listener options', () => {
  test('start-up prints the dashboard link with the token; off disables it', async () => {
    const srv = await startServer({ files: { 'a.txt': 'a' }, logLevel: 'info' });
    const token = srv.adminToken();
    const get = async (p) => (await fetch(srv.adminUrl + p, { headers: { Authorization: `Bearer ${token}` } })).json();
    const none = { deliveries: 0, confirmed: 0, corrupted: 0, pending: 0, confirmation_rate: null };
    assert.deepEqual(await get('/api/summary'), {
      deliveries: 0, confirmed: 0, corrupted: 0, bound: 0, pending: 0, confirmation_rate: null,
      first_issued_ms: null, last_activity_ms: null,
      kinds: { page: none, download: none, view: none, device: none, tracked: none },
    });
    assert.deepEqual(await get('/api/contents'), { items: [], truncated: false });
    assert.deepEqual(await get('/api/clients'), { items: [], truncated: false });
    assert.deepEqual(await get('/api/deliveries'), { items: [], next_cursor: null });
    const series = await get('/api/series');
    assert.ok(series.buckets.length > 0 && series.buckets.every((b) => b.deliveries === 0));
    assert.ok(Math.abs(series.until_ms - Date.now()) < 3 * 3600 * 1000, 'an empty ledger shows the last day');
    // Logs, which a journal or a file keeps, name where the token is, not the token.
    assert.ok(srv.log().includes(`dashboard: http://127.0.0.1:${srv.adminPort}/ (its token is in `), srv.log());
    assert.ok(!srv.log().includes(token), 'the token stays out of the log');
    assert.equal((await srv.stop()).code, 0);
    // A person at a terminal gets the link that signs in.
    const port = await freePort();
    const adminPort = await freePort();
    const shown = await new Promise((resolve) => {
      const cmd = ['exec', RECEIPTD, '--root', srv.root, '--state-dir', srv.stateDir, '--listen',
        `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--log-level', 'warn',
        ...ledgerArgs(srv.stateDir)].map((a) => `'${a}'`).join(' ');
      // script(1) gives receiptd a terminal; receiptd is its only child
      const tty = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
      const stopChild = (sig) => {
        try {
          const kids = fs.readFileSync(`/proc/${tty.pid}/task/${tty.pid}/children`, 'utf8').trim().split(/\s+/);
          for (const k of kids) if (k) process.kill(Number(k), sig);
        } catch { /* already gone */ }
      };
      let out = '';
      tty.stdout.on('data', (d) => {
        out += d;
        if (out.includes('#token=')) stopChild('SIGTERM');
      });
      const timer = setTimeout(() => { stopChild('SIGKILL'); tty.kill('SIGKILL'); }, 10000);
      tty.on('exit', () => { clearTimeout(timer); resolve(out); });
    });
    assert.ok(shown.includes(`receiptd: dashboard http://127.0.0.1:${adminPort}/#token=${token}`), shown);
    // The same token at the next start.
    const again = await startServer({ root: srv.root, stateDir: srv.stateDir });
    assert.equal(again.adminToken(), token);
    const res = await fetch(again.adminUrl + '/api/summary', { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.equal((await again.stop()).code, 0);
    const off = await startServer({ files: { 'a.txt': 'a' }, args: ['--admin-listen', 'off'] });
    assert.ok(!fs.existsSync(path.join(off.stateDir, 'admin-token')));
    assert.ok(!off.log().includes('dashboard'));
    assert.equal((await off.stop()).code, 0);
  });

  test('a token file that others can read is refused', async () => {
    const srv = await startServer({ files: { 'a.txt': 'a' } });
    assert.equal((await srv.stop()).code, 0);
    fs.chmodSync(path.join(srv.stateDir, 'admin-token'), 0o640);
    const r = spawnSync(RECEIPTD, ['--root', srv.root, '--state-dir', srv.stateDir, '--listen', '127.0.0.1:0',
      '--admin-listen', '127.0.0.1:0', ...ledgerArgs(srv.stateDir)], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /admin-token grants access to group or others/);
  });
});

describe('receiptd report', () => {
  let stateDir;
  before(async () => {
    const srv = await seededServer();
    stateDir = srv.stateDir;
    assert.equal((await srv.stop()).code, 0, srv.log()); // no server runs during the reports
  });
  const report = (...args) => spawnSync(RECEIPTD, ['report', '--state-dir', stateDir, ...ledgerArgs(stateDir), ...args],
    { encoding: 'utf8', timeout: 10000 });

  test('json: one array of the API items', () => {
    const r = report('--format', 'json');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), byNewest.map(item));
    const f = report('--format', 'json', '--status', 'corrupted', '--content', '/fw/image.bin');
    assert.deepEqual(JSON.parse(f.stdout), newestFirst(rows.filter((x) => x.status === 'corrupted' && x.content === '/fw/image.bin')).map(item));
    const none = report('--format', 'json', '--content', '/none');
    assert.deepEqual(JSON.parse(none.stdout), []);
  });

  test('csv with --since, through --ledger', () => {
    const since = rows[30].issued_at_ms;
    const ledger = ledgerArgs(stateDir)[1] ?? `sqlite:${path.join(stateDir, 'ledger.sqlite')}`;
    const r = spawnSync(RECEIPTD, ['report', '--ledger', ledger, '--format', 'csv',
      '--since', new Date(since).toISOString()], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const table = parseCsv(r.stdout);
    assert.deepEqual(table[0], CSV_COLUMNS);
    assert.deepEqual(table.slice(1), newestFirst(rows.slice(30)).map(csvFields));
  });

  test('table: one line per delivery, control characters escaped, totals', () => {
    const r = report('--status', 'pending');
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const want = newestFirst(rows.filter((x) => x.status === 'issued' || x.status === 'bound'));
    assert.match(lines[0], /^DELIVERY\s+STATUS\s+KIND\s+ISSUED\s+CONFIRMED\s+CLIENT\s+CONTENT$/);
    assert.deepEqual(lines.slice(1, 1 + want.length).map((l) => l.split(/\s+/)[0]), want.map((x) => x.delivery));
    assert.equal(lines[1 + want.length], '');
    assert.deepEqual(lines.slice(1, 1 + want.length).map((l) => l.split(/\s+/)[2]), want.map((x) => x.kind));
    assert.equal(lines[2 + want.length], `${want.length} deliveries: 0 confirmed, 0 corrupted, ${want.length} pending`);
    // Then each kind with its rate.
    const kindLines = lines.slice(3 + want.length);
    const present = KINDS.filter((k) => want.some((x) => x.kind === k));
    assert.deepEqual(kindLines.map((l) => l.trim().split(/\s+/)[0]), present);
    for (const [i, k] of present.entries()) {
      const n = want.filter((x) => x.kind === k).length;
      assert.equal(kindLines[i].trim(), `${k.padEnd(9)} ${n}: 0 confirmed, 0 corrupted, ${n} pending (0.0 % confirmed)`);
    }
    const all = report();
    assert.ok(all.stdout.includes('/odd,"quoted"\\x0aname;\\x09=cmd.html'), 'escaped, on one line');
    const kindsSeen = new Set(rows.map((x) => x.kind)).size;
    assert.equal(all.stdout.trimEnd().split('\n').length, rows.length + 3 + kindsSeen);
  });

  test('usage errors and a missing ledger', () => {
    assert.equal(report('--format', 'xml').status, 2);
    assert.equal(report('--status', 'nope').status, 2);
    assert.equal(report('--kind', 'nope').status, 2);
    assert.equal(report('--since', 'soon').status, 2);
    assert.equal(report('extra').status, 2);
    const help = spawnSync(RECEIPTD, ['report', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^usage: receiptd report/);
    const missing = spawnSync(RECEIPTD, ['report', '--state-dir', '/nonexistent/state'], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /receiptd report: /);
  });
});
