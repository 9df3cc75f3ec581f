// A seeded ledger for the admin API, dashboard and report suites: rows
// across contents and versions, clients, statuses and days, written with
// the database's own shell into a stopped server's ledger, and the figures
// the API must answer, computed here from the rows independently of receiptd.
import crypto from 'node:crypto';

export const T0 = Date.UTC(2025, 10, 20, 8, 0, 0); // 2025-11-20T08:00:00Z
const HOUR = 3600 * 1000;

// A path a spreadsheet and a terminal must both survive.
export const HOSTILE_PATH = '/odd,"quoted"\nname;\t=cmd.html';

const sha = (s) => crypto.createHash('sha256').update(s).digest();
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const clientId = (n) => b64u(sha(`client-${n}`)); // 43 characters, like a thumbprint

export const CLIENTS = [clientId(1), clientId(2), clientId(3), clientId(4)];
export const KINDS = ['page', 'download', 'view', 'device', 'tracked'];
const ELEMENT_LEN = '<script src="/_receipt/agent.js" async></script>'.length;
export const CONTENTS = [
  { path: '/docs/terms.html', body: 'terms v1', size: 1200 },
  { path: '/docs/terms.html', body: 'terms v2', size: 1300 },
  { path: '/fw/image.bin', body: 'firmware', size: 4096 },
  { path: HOSTILE_PATH, body: 'odd', size: 10 },
];

/** A UUIDv7-shaped ID whose order is the issue order. */
function idFor(ms, n) {
  const hex = ms.toString(16).padStart(12, '0');
  const tail = n.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-${tail}`;
}

/** The seeded rows, as the API names their fields. */
export function seedRows() {
  const rows = [];
  const statuses = ['confirmed', 'confirmed', 'corrupted', 'issued', 'bound', 'confirmed', 'confirmed'];
  for (let i = 0; i < 61; i++) {
    const c = CONTENTS[i % 4 === 3 && i % 8 !== 3 ? 3 : i % 3];
    const status = statuses[(i * 5) % statuses.length];
    const issued = T0 + i * 71 * 60 * 1000 + (i % 5) * 1000; // spread over three days
    const client = status === 'issued' ? null : CLIENTS[(i * 3) % 4];
    const latency = status === 'confirmed' || status === 'corrupted' ? 400 + ((i * 7919) % 60000) : null;
    // HTML is viewed as a page or fetched by a device (both injected), or
    // tracked; a binary is downloaded, fetched by a device, or viewed.
    const kind = c.path.endsWith('.html') ? ['page', 'device', 'tracked'][Math.floor(i / 4) % 3]
      : ['download', 'device', 'view'][Math.floor(i / 4) % 3];
    const injected = kind === 'page' || kind === 'device' ? c.path.endsWith('.html') : false;
    rows.push({
      delivery: idFor(issued, i + 1),
      content: c.path,
      sha256: b64u(sha(c.body)),
      size: c.size,
      kind,
      delivered: injected
        ? { sha256: b64u(sha(c.body + '+element')), size: c.size + ELEMENT_LEN }
        : { sha256: b64u(sha(c.body)), size: c.size },
      status,
      client,
      client_addr: `192.0.2.${(i % 200) + 1}`,
      issued_at_ms: issued,
      confirmed_at_ms: latency === null ? null : issued + latency,
      server: i % 2 ? 'edge-1' : 'edge-2',
      bound_at_ms: client ? issued + 50 : null,
      receipt: latency === null ? null : `eyJhbGciOiJFUzI1NiJ9.eyJkZWxpdmVyeSI6IiR7aX0ifQ.sig${i}`,
    });
  }
  return rows;
}

const q = (s) => (s === null ? 'NULL' : `'${String(s).replace(/'/g, "''")}'`);

/** Writes the rows into a stopped server's ledger (a startServer handle). */
export function writeSeed(srv, rows) {
  const blob = (b64) => srv.blob(Buffer.from(b64, 'base64url').toString('hex'));
  const values = rows.map((r) => `(${[
    q(r.delivery), q(r.content), blob(r.sha256), r.size, q(r.server), q(r.client_addr), q('seed/1.0'),
    r.issued_at_ms, q(r.status), q(r.client), r.client ? q('198.51.100.7') : 'NULL',
    r.bound_at_ms ?? 'NULL', r.confirmed_at_ms ?? 'NULL', r.confirmed_at_ms ? q('198.51.100.8') : 'NULL',
    r.status === 'confirmed' ? blob(r.sha256) : r.status === 'corrupted' ? blob(b64u(sha('other'))) : 'NULL',
    r.confirmed_at_ms ? r.size : 'NULL', r.confirmed_at_ms ?? 'NULL', q(r.receipt), q(r.kind),
    r.delivered.sha256 === r.sha256 ? 'NULL' : blob(r.delivered.sha256),
    r.delivered.sha256 === r.sha256 ? 'NULL' : r.delivered.size,
  ].join(', ')})`);
  // SQLite: into a ledger of the schema before the rollups, as an older
  // receiptd left it, so that the next start builds them from these rows
  // (PostgreSQL's triggers count rows inserted by any client).
  if (srv.backend === 'sqlite') {
    srv.exec('DROP TABLE rollup_status; DROP TABLE rollup_minutes; DROP TABLE rollup_latest;'
      + ' PRAGMA user_version = 7;');
  }
  srv.exec(`BEGIN; INSERT INTO deliveries (id, path, sha256, size, server, client_addr, user_agent,
    issued_ms, status, client, bound_addr, bound_ms, confirmed_ms, confirm_addr, received_sha256,
    received_size, received_at_ms, receipt, kind, delivered_sha256, delivered_size)
    VALUES ${values.join(',\n')}; COMMIT;`);
}

/** The API's item of a row (the list fields, not the detail ones). */
export function item(r) {
  const { bound_at_ms, receipt, ...rest } = r;
  return rest;
}

export const newestFirst = (rows) => [...rows].sort((a, b) => (a.delivery < b.delivery ? 1 : -1));

// ---- expected figures ----------------------------------------------------------

const isPending = (r) => r.status === 'issued' || r.status === 'bound';
const isConfirmed = (r) => r.status === 'confirmed' || r.status === 'corrupted';

/** Nearest rank: the ceil(p/100 * n)-th smallest, counting from 1. */
export function nearestRank(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1];
}

export function expectedSummary(rows) {
  const n = rows.length;
  const confirmed = rows.filter((r) => r.status === 'confirmed').length;
  const corrupted = rows.filter((r) => r.status === 'corrupted').length;
  const kinds = {};
  for (const k of KINDS) {
    const g = rows.filter((r) => r.kind === k);
    const kc = g.filter((r) => r.status === 'confirmed').length;
    const kx = g.filter((r) => r.status === 'corrupted').length;
    kinds[k] = {
      deliveries: g.length, confirmed: kc, corrupted: kx, pending: g.filter(isPending).length,
      confirmation_rate: g.length ? (kc + kx) / g.length : null,
    };
  }
  return {
    deliveries: n,
    confirmed,
    corrupted,
    bound: rows.filter((r) => r.status === 'bound').length,
    pending: rows.filter(isPending).length,
    confirmation_rate: n ? (confirmed + corrupted) / n : null,
    kinds,
  };
}

export function expectedContents(rows) {
  const groups = new Map();
  for (const r of rows) {
    const key = r.content + '\u0000' + r.sha256;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const out = [...groups.values()].map((g) => {
    const lat = g.filter(isConfirmed).map((r) => r.confirmed_at_ms - r.issued_at_ms);
    const confirmed = g.filter((r) => r.status === 'confirmed').length;
    const corrupted = g.filter((r) => r.status === 'corrupted').length;
    return {
      content: g[0].content,
      sha256: g[0].sha256,
      size: g[0].size,
      deliveries: g.length,
      confirmed,
      corrupted,
      pending: g.filter(isPending).length,
      confirmation_rate: (confirmed + corrupted) / g.length,
      median_ms: nearestRank(lat, 50),
      p95_ms: nearestRank(lat, 95),
      first_issued_ms: Math.min(...g.map((r) => r.issued_at_ms)),
      last_issued_ms: Math.max(...g.map((r) => r.issued_at_ms)),
    };
  });
  // By path (bytewise, as SQLite compares text), then by first issue.
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.content), Buffer.from(b.content)) ||
    a.first_issued_ms - b.first_issued_ms);
}

export function expectedClients(rows) {
  const groups = new Map();
  for (const r of rows.filter((x) => x.client)) {
    if (!groups.has(r.client)) groups.set(r.client, []);
    groups.get(r.client).push(r);
  }
  return [...groups.entries()].map(([client, g]) => ({
    client,
    deliveries: g.length,
    confirmed: g.filter((r) => r.status === 'confirmed').length,
    corrupted: g.filter((r) => r.status === 'corrupted').length,
    pending: g.filter(isPending).length,
    last_seen_ms: Math.max(...g.map((r) => Math.max(r.issued_at_ms, r.bound_at_ms ?? 0, r.confirmed_at_ms ?? 0))),
  })).sort((a, b) => b.last_seen_ms - a.last_seen_ms || (a.client < b.client ? -1 : 1));
}

/** RFC 4180 parser, for reading exports back. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++; }
    else field += ch;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

export const CSV_COLUMNS = ['delivery', 'content', 'sha256', 'size', 'status', 'client', 'client_addr',
  'issued_at_ms', 'confirmed_at_ms', 'server', 'kind', 'delivered_sha256', 'delivered_size'];

/** A row as its CSV fields (strings; empty for null). */
export const csvFields = (r) => CSV_COLUMNS.map((k) => {
  const v = k.startsWith('delivered_') ? r.delivered[k.slice('delivered_'.length)] : r[k];
  return v === null ? '' : String(v);
});
