// Starts a real receiptd on a free loopback port with a temporary content
// root and state directory, for the end-to-end suites.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const RECEIPTD = process.env.RECEIPTD || path.join(repoRoot, 'build/receiptd');
export const RECEIPT_CLI = process.env.RECEIPT_CLI || path.join(repoRoot, 'build/receipt');

export function tempDir(prefix = 'receipt-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function writeFiles(root, files) {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function waitListening(port, proc, log, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        reject(new Error(`receiptd exited (${proc.exitCode ?? proc.signalCode}):\n${log()}`));
        return;
      }
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`receiptd did not listen:\n${log()}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

// Runs receiptd with args and waits for it to exit; for start-up failures.
export function runReceiptd(args, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(RECEIPTD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
 * (extra command-line arguments), port, adminPort. Returns a handle with url,
 * port, adminUrl, root, stateDir, stop(), kill(), query(sql), adminToken()
 * and log().
 *
 * The admin listener gets a free port of its own unless args name
 * --admin-listen: the default 127.0.0.1:8091 would collide between servers.
 */
export async function startServer(opts = {}) {
  const root = opts.root || tempDir('receipt-root-');
  if (opts.files) writeFiles(root, opts.files);
  const stateDir = opts.stateDir || path.join(tempDir('receipt-state-'), 'state');
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
    ...extra,
  ];
  const proc = spawn(RECEIPTD, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env || {}) },
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const log = () => output;
  await waitListening(port, proc, log);
  if (adminPort) await waitListening(adminPort, proc, log);

  const ledgerFile = path.join(stateDir, 'ledger.sqlite');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    adminPort,
    adminUrl: adminPort ? `http://127.0.0.1:${adminPort}` : null,
    /** The admin bearer token (STATE_DIR/admin-token). */
    adminToken() {
      return fs.readFileSync(path.join(stateDir, 'admin-token'), 'utf8').trim();
    },
    root,
    stateDir,
    proc,
    log,
    ledgerFile,
    exited,
    /** Sends a signal (SIGTERM by default) and resolves with {code, signal}. */
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async kill() {
      return this.stop('SIGKILL');
    },
    /** Rows of a query against the ledger, read with the sqlite3 shell. */
    query(sql) {
      return queryLedger(ledgerFile, sql);
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

/** Sends raw bytes over TCP and resolves with the raw response text. */
export function rawRequest(port, text, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
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
