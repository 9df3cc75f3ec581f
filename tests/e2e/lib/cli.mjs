// The receipt command for the end-to-end suites: runs it with a state
// directory of its own, and makes client directories (key, spool,
// receipts) that removeOwnTempDirs() deletes when a suite ends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, repoRoot } from './server.mjs';

export const CLI = path.resolve(repoRoot, process.env.RECEIPT_CLI || 'build/receipt');

// Directories made for clients; removed by removeOwnTempDirs().
const madeDirs = [];
export function ownTempDir(prefix) {
  const dir = tempDir(prefix);
  madeDirs.push(dir);
  return dir;
}

// A sanitizer build keeps shadow memory and a quarantine: its footprint is
// not the program's, and valgrind cannot run it.
export const cliIsSanitized = (() => {
  try {
    const bin = fs.readFileSync(CLI);
    return bin.includes('__asan_init') || bin.includes('__ubsan_handle');
  } catch {
    return false;
  }
})();

/**
 * A client's own state in a fresh directory: key (made with keygen unless
 * withKey is false), spool and receipts.
 */
export async function clientDirs({ withKey = true } = {}) {
  const dir = ownTempDir('receipt-cli-');
  const c = {
    dir,
    key: path.join(dir, 'key.pem'),
    spool: path.join(dir, 'spool'),
    receipts: path.join(dir, 'receipts'),
    out: (name) => path.join(dir, name),
    args() {
      return ['--key', this.key, '--spool', this.spool, '--receipts', this.receipts];
    },
  };
  if (withKey) {
    const r = await runCli(['keygen', '--key', c.key, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  return c;
}

/**
 * Runs the CLI; resolves with {code, signal, stdout, stderr, peakKb} where
 * peakKb is the highest VmHWM seen while it ran (when watchMemory).
 */
export function runCli(args, { env = {}, timeoutMs = 60000, watchMemory = false, wrap = null } = {}) {
  return new Promise((resolve) => {
    const argv = wrap ? [...wrap, CLI, ...args] : args;
    const proc = spawn(wrap ? argv[0] : CLI, wrap ? argv.slice(1) : argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, XDG_STATE_HOME: env.XDG_STATE_HOME || ownTempDir('receipt-xdg-'), ...env },
    });
    const out = [];
    let stderr = '';
    let peakKb = 0;
    proc.stdout.on('data', (d) => out.push(d));
    proc.stderr.on('data', (d) => (stderr += d));
    let poll = null;
    if (watchMemory) {
      poll = setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
          if (m) peakKb = Math.max(peakKb, Number(m[1]));
        } catch {
          /* exited between two polls */
        }
      }, 10);
    }
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      const stdout = Buffer.concat(out);
      resolve({ code, signal, stdout: stdout.toString('utf8'), stdoutBytes: stdout, stderr, peakKb });
    });
  });
}

export function parseJsonLine(stdout) {
  const lines = stdout.trim().split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `one JSON object expected, got: ${stdout}`);
  return JSON.parse(lines[0]);
}

export function removeOwnTempDirs() {
  for (const dir of madeDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
