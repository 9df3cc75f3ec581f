// Starts a real receiptd on a free loopback port with a temporary content
// root and state directory, for the end-to-end suites.
//
// The ledger is SQLite in the state directory, or, with
// RECEIPT_TEST_LEDGER=postgresql, a database of its own on the PostgreSQL
// server of tests/with-postgres: one database per state directory, so that
// a server started again on the same state finds its rows. The suites read
// and change the ledger through the handle's query(), exec() and
// lockLedger(), which speak to either.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { after } from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const RECEIPTD = process.env.RECEIPTD || path.join(repoRoot, 'build/receiptd');
export const RECEIPT_CLI = process.env.RECEIPT_CLI || path.join(repoRoot, 'build/receipt');

// Every temporary directory goes when the suite's process ends: a state
// directory holds the recovery file's reservation (61 MB at the defaults),
// so thousands left behind fill a disk. RECEIPT_TEST_KEEP=1 keeps them.
const made = [];
process.on('exit', () => {
  if (process.env.RECEIPT_TEST_KEEP) return;
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // a mount point still in use, say: left for the system's cleaner
    }
  }
});

// A test that timed out never reaches its own stop(): its receiptd would
// then keep the suite's process (and the whole run) waiting on its pipes
// for ever. Whatever is still running when the file's tests are done is
// killed, and said so.
const running = new Set();
after(() => {
  for (const proc of running) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    process.stderr.write(`e2e harness: receiptd ${proc.pid} was still running after the tests: killed\n`);
    proc.kill('SIGKILL');
  }
});

export function tempDir(prefix = 'receipt-e2e-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

// Ports come from below the kernel's ephemeral range (32768 and up), so
// that no outgoing connection and no listen(0) of a parallel suite is
// handed one between the check here and the server's own bind; each
// process walks its own stretch of 10000-32767, chosen by its pid, and
// skips a port that something already holds. startServer still retries a
// start that lost a port race (see there).
const PORT_LOW = 10000;
const PORT_SPAN = 32768 - PORT_LOW;
let nextPortOffset = (process.pid * 97) % PORT_SPAN;

function portBindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function freePort() {
  for (let tries = 0; tries < PORT_SPAN; tries++) {
    const port = PORT_LOW + nextPortOffset;
    nextPortOffset = (nextPortOffset + 1) % PORT_SPAN;
    if (await portBindable(port)) return port;
  }
  throw new Error('freePort: no bindable loopback port in 10000-32767');
}

export function writeFiles(root, files) {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The backend the suites run against: 'sqlite' (default) or 'postgresql'. */
export const LEDGER = process.env.RECEIPT_TEST_LEDGER === 'postgresql' ? 'postgresql' : 'sqlite';

const PSQL = path.join(process.env.RECEIPT_TEST_PG_BIN || '/usr/bin', 'psql');
const pgDatabases = new Map(); // state directory -> database name
let pgCounter = 0;

/** A connection URL for a database of the test server. */
export function pgUrl(db) {
  const host = process.env.RECEIPT_TEST_PG_HOST;
  const port = process.env.RECEIPT_TEST_PG_PORT;
  if (!host || !port) throw new Error('no PostgreSQL for the tests: run under tests/with-postgres');
  return `postgresql://receipt@/${db}?host=${encodeURIComponent(host)}&port=${port}`;
}

function psql(db, sql, extra = []) {
  return execFileSync(PSQL, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...extra, '-d', pgUrl(db), '-c', sql],
    { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Makes a new, empty database; returns its name. */
export function pgCreateDatabase(prefix = 'e2e') {
  const db = `${prefix}_${process.pid}_${pgCounter++}`;
  psql('postgres', `CREATE DATABASE ${db}`);
  // The suites' SQL is SQLite's: hex() is the one function PostgreSQL lacks.
  psql(db, "CREATE FUNCTION hex(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(encode($1, 'hex')) $$");
  return db;
}

function pgDatabaseFor(stateDir) {
  const key = path.resolve(stateDir);
  if (!pgDatabases.has(key)) pgDatabases.set(key, pgCreateDatabase());
  return pgDatabases.get(key);
}

/** The --ledger arguments a receiptd on this state directory needs (none for SQLite). */
export function ledgerArgs(stateDir, backend = LEDGER) {
  return backend === 'postgresql' ? ['--ledger', pgUrl(pgDatabaseFor(stateDir))] : [];
}

/**
 * pg_ctl on the test server (tests/with-postgres): stop('fast'|'immediate')
 * and start(), each waiting until done; start() on a running server does
 * nothing.
 */
export const pgServer = {
  ctl(args) {
    return spawnSync('sh', ['-c', `${process.env.RECEIPT_TEST_PG_CTL} ${args}`], { stdio: 'ignore' }).status;
  },
  running() {
    return this.ctl('status') === 0;
  },
  stop(mode = 'fast') {
    if (this.running() && this.ctl(`stop -m ${mode}`) !== 0) throw new Error('pg_ctl stop failed');
  },
  start() {
    if (!this.running() && this.ctl('start') !== 0) throw new Error('pg_ctl start failed');
  },
};

/** Rows of a query against a PostgreSQL database, as objects. */
export function pgQuery(db, sql) {
  const out = psql(db, `SELECT coalesce(json_agg(q), '[]'::json) FROM (${sql}) q`, ['-A', '-t']);
  return JSON.parse(out);
}

export function pgExec(db, sql) {
  psql(db, sql);
}

/** Holds a lock that keeps every writer of the ledger waiting, until released. */
function lockWith(cmd, args, script) {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stdin.write(script);
  const locked = new Promise((resolve) => proc.stdout.on('data', (d) => String(d).includes('locked') && resolve()));
  return {
    locked,
    release() {
      proc.stdin.end('COMMIT;\n');
      return new Promise((resolve) => proc.on('exit', resolve));
    },
  };
}

/** The ledger of a state directory, whichever backend: query, exec, lock. */
export function ledgerOf(stateDir, backend = LEDGER) {
  const file = path.join(stateDir, 'ledger.sqlite');
  if (backend === 'postgresql') {
    const db = pgDatabaseFor(stateDir);
    return {
      database: db,
      query: (sql) => pgQuery(db, sql),
      exec: (sql) => pgExec(db, sql),
      blob: (hex) => `'\\x${hex}'::bytea`,
      lock: () => lockWith(PSQL, ['-X', '-q', '-d', pgUrl(db)],
        "BEGIN;\nLOCK TABLE deliveries IN EXCLUSIVE MODE;\nSELECT 'locked';\n"),
    };
  }
  return {
    query: (sql) => queryLedger(file, sql),
    exec: (sql) => writeLedger(file, sql),
    blob: (hex) => `X'${hex}'`,
    lock: () => lockWith('sqlite3', [file], "PRAGMA busy_timeout=5000;\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n"),
  };
}

/** With --state-dir DIR among args, and no --ledger: the ledger of DIR. */
function withLedger(args) {
  const i = args.indexOf('--state-dir');
  if (i < 0 || i + 1 >= args.length || args.includes('--ledger')) return args;
  return [...args, ...ledgerArgs(args[i + 1])];
}

/** Resolves once port accepts connections; rejects if proc (called what) exits first. */
export function waitListening(port, proc, log, timeoutMs = 10000, what = 'receiptd') {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        reject(new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}):\n${log()}`));
        return;
      }
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`${what} did not listen on ${port}:\n${log()}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

// Runs receiptd with args and waits for it to exit; for start-up failures.
export function runReceiptd(args, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(RECEIPTD, withLedger(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Starts receiptd. Options: files ({"/a.html": "..."}), root, stateDir, args
 * (extra command-line arguments), port, adminPort, ledger ('sqlite' or
 * 'postgresql'; default RECEIPT_TEST_LEDGER's), readyMs (how long it may
 * take to listen; default 10 s), https (the public listener speaks TLS: url
 * is https), adminHttps, wrap (a command to run receiptd under, e.g.
 * ['strace', '-f']). Returns a handle with url,
 * port, adminUrl, root, stateDir, stop(), kill(), query(sql), exec(sql),
 * lockLedger(), adminToken() and log(); query and exec work after a stop.
 *
 * The admin listener gets a free port of its own unless args name
 * --admin-listen: the default 127.0.0.1:8091 would collide between servers.
 */
export async function startServer(opts = {}) {
  const root = opts.root || tempDir('receipt-root-');
  if (opts.files) writeFiles(root, opts.files);
  const stateDir = opts.stateDir || path.join(tempDir('receipt-state-'), 'state');
  // A port found free can be taken by a parallel suite before receiptd
  // binds it; a start that failed for that alone is tried again on fresh
  // ports (only for ports chosen here, never for ones the caller named).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce({ ...opts, root, stateDir, files: undefined });
    } catch (err) {
      const lost = (err.chosenPorts || []).some((p) =>
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${p}( \\(admin\\))?: Address already in use`).test(err.message),
      );
      if (!lost || attempt >= 5) throw err;
    }
  }
}

async function startServerOnce(opts) {
  const root = opts.root;
  const stateDir = opts.stateDir;
  const port = opts.port || (await freePort());
  const extra = opts.args || [];
  const adminGiven = extra.includes('--admin-listen');
  const adminPort = adminGiven ? null : opts.adminPort || (await freePort());
  const args = [
    '--root', root,
    '--listen', `127.0.0.1:${port}`,
    '--state-dir', stateDir,
    '--log-level', opts.logLevel || 'warn',
    ...(adminGiven ? [] : ['--admin-listen', `127.0.0.1:${adminPort}`]),
    ...(extra.includes('--ledger') ? [] : ledgerArgs(stateDir, opts.ledger)),
    ...extra,
  ];
  // opts.wrap: a command that runs receiptd (strace, valgrind), its argv before receiptd's.
  const wrap = opts.wrap || [];
  const proc = spawn(wrap.length ? wrap[0] : RECEIPTD, [...wrap.slice(1), ...(wrap.length ? [RECEIPTD] : []), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env || {}) },
  });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const log = () => output;
  try {
    await waitListening(port, proc, log, opts.readyMs);
    if (adminPort) await waitListening(adminPort, proc, log, opts.readyMs);
  } catch (err) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    err.chosenPorts = [opts.port ? null : port, opts.adminPort ? null : adminPort].filter(Boolean);
    throw err;
  }

  const ledgerFile = path.join(stateDir, 'ledger.sqlite');
  const ledger = ledgerOf(stateDir, opts.ledger);
  return {
    url: `${opts.https ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    adminPort,
    adminUrl: adminPort ? `${opts.adminHttps ? 'https' : 'http'}://127.0.0.1:${adminPort}` : null,
    /** The admin bearer token (STATE_DIR/admin-token). */
    adminToken() {
      return fs.readFileSync(path.join(stateDir, 'admin-token'), 'utf8').trim();
    },
    root,
    stateDir,
    proc,
    log,
    ledgerFile,
    /** 'sqlite' or 'postgresql'. */
    backend: opts.ledger || LEDGER,
    exited,
    /** Sends a signal (SIGTERM by default) and resolves with {code, signal}. */
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async kill() {
      return this.stop('SIGKILL');
    },
    /** Rows of a query against the ledger (sqlite3 shell or psql), as objects. */
    query(sql) {
      return ledger.query(sql);
    },
    /** Changes the ledger behind the server's back (crash simulations, seeds). */
    exec(sql) {
      return ledger.exec(sql);
    },
    /** A literal of bytes (hex) in the ledger's SQL. */
    blob(hex) {
      return ledger.blob(hex);
    },
    /** Holds a lock every ledger writer waits for: {locked, release()}. */
    lockLedger() {
      return ledger.lock();
    },
    /** Polls until fn() is truthy (ledger rows lag deliveries by a batch). */
    async until(fn, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) return v;
        await sleep(20);
      }
    },
  };
}

export function queryLedger(file, sql) {
  if (!fs.existsSync(file)) return [];
  const out = execFileSync('sqlite3', ['-json', '-readonly', file, sql], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return out.trim() === '' ? [] : JSON.parse(out);
}

/** Changes the ledger behind a stopped server's back (crash simulations). */
export function writeLedger(file, sql) {
  execFileSync('sqlite3', [file, sql], { encoding: 'utf8' });
}

/** Sends raw bytes over TCP (from localAddress, when given) and resolves
 * with the raw response text. */
export function rawRequest(port, text, timeoutMs = 5000, localAddress = undefined) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    sock.write(text);
  });
}

export function statusOf(raw) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}
