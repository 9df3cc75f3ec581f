// Go's golang.org/x/mod/sumdb/tlog and sumdb/note as an independent auditor
// of a running server's evidence log: tests/interop/logcheck.go, built once
// per process in GOPATH mode over the Debian package's sources (offline).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RECEIPTD, repoRoot } from './server.mjs';

let built = null;

/** The path of the built logcheck program; throws when Go cannot build it. */
export function logcheckProgram() {
  if (built) return built;
  const work = path.join(path.dirname(RECEIPTD), 'tests/interop/go');
  fs.mkdirSync(work, { recursive: true });
  const out = path.join(work, 'logcheck');
  const r = spawnSync('go', ['build', '-o', out, path.join(repoRoot, 'tests/interop/logcheck.go')], {
    env: {
      ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off',
      GOCACHE: path.join(work, 'cache'), CGO_ENABLED: '0',
    },
    encoding: 'utf8',
  });
  if (r.error) throw new Error(`go build: ${r.error.message} (scripts/install-deps installs golang-go)`);
  if (r.status !== 0) throw new Error(`go build logcheck.go:\n${r.stderr}`);
  built = out;
  return out;
}

/**
 * Runs logcheck against the server at url with the verifier key, checking
 * the proofs given (objects of the confirmation answer's "proof").
 * Resolves with {status, out, lines}.
 */
export function logcheck(url, key, proofs = []) {
  const r = spawnSync(logcheckProgram(), ['-url', url, '-key', key], {
    input: proofs.map((p) => JSON.stringify(p)).join('\n') + '\n',
    encoding: 'utf8',
    timeout: 60000,
  });
  const out = (r.stdout || '') + (r.stderr || '');
  return { status: r.status, out, lines: out.split('\n').filter(Boolean) };
}
