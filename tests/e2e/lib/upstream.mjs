// The upstreams the reverse-proxy suites stand receiptd in front of: the
// small application server of upstream_app.py (Python's standard library)
// and nginx serving files, both on loopback (or a Unix socket), both
// stopped by the suites. Also a private certificate authority for https
// upstreams, and the resident memory of a process.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './server.mjs';
import { startNginx as startNginxServers, tlsServerLines } from './nginx.mjs';
import { makeCA } from './tls.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const APP = path.join(here, 'upstream_app.py');

/** The 10 MiB the application serves at /download.bin, and its 64 KiB firmware. */
export function pattern(size, seed) {
  const out = Buffer.alloc(size);
  for (let n = 0, off = 0; off < size; n++) {
    const d = crypto.createHash('sha256').update(`${seed}:${n}`).digest();
    off += d.copy(out, off);
  }
  return out;
}

/**
 * Starts upstream_app.py on a free loopback port, or on a Unix socket when
 * opts.unix names one. Returns { url, port, socket, stop(), proc }.
 */
export function startApp(opts = {}) {
  const args = [APP, ...(opts.unix ? ['--unix', opts.unix] : ['--port', '0'])];
  const proc = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = '';
    // Python's start can take long on a loaded machine. One that never says
    // it listens is killed: left running, it would hold the suite's process
    // open after its tests are done.
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`upstream app did not start within 60 s: ${err}`));
    }, 60000);
    proc.on('exit', (code) => reject(new Error(`upstream app exited ${code}: ${err}`)));
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^listening (\S+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      const where = m[1];
      const exited = new Promise((r) => proc.on('exit', r));
      const stop = async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        await exited;
      };
      if (opts.unix) resolve({ socket: where, url: `unix:${where}`, proc, stop, log: () => err });
      else resolve({ port: Number(where), url: `http://127.0.0.1:${where}`, proc, stop, log: () => err });
    });
  });
}

/**
 * Starts nginx serving root on a free loopback port (lib/nginx.mjs); with
 * tls ({cert, key}) it speaks https. extra: more server-block directives.
 * Returns { url, port, stop() }.
 */
export async function startNginx({ root, tls = null, extra = '' }) {
  const port = await freePort();
  const nginx = await startNginxServers({
    ports: [port],
    servers: `
    types { text/html html; application/octet-stream bin; text/plain txt; }
    access_log off;
    server {
        listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
        server_name localhost;
        root ${root};
        ${tls ? tlsServerLines(tls) : ''}
        ${extra}
    }`,
  });
  return { port, url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, stop: () => nginx.stop() };
}

/** A certificate authority and a certificate for 127.0.0.1 and localhost it signed. */
export function makeCertificates() {
  const ca = makeCA();
  const pair = ca.issue();
  return { ca: ca.cert, cert: pair.chain, key: pair.key };
}

/** Resident memory of a process, in bytes. */
export function rssOf(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}
