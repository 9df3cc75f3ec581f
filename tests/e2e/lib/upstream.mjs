// The upstreams the reverse-proxy suites stand receiptd in front of: the
// small application server of upstream_app.py (Python's standard library)
// and nginx serving files, both on loopback (or a Unix socket), both
// stopped by the suites. Also a private certificate authority for https
// upstreams, and the resident memory of a process.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const APP = path.join(here, 'upstream_app.py');
export const NGINX = process.env.NGINX || '/usr/sbin/nginx';

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
    const timer = setTimeout(() => reject(new Error(`upstream app did not start: ${err}`)), 15000);
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
 * Starts nginx serving root on a free loopback port; with tls ({cert, key})
 * it speaks https. extra: more server-block directives. Returns
 * { url, port, stop() }.
 */
export async function startNginx({ root, tls = null, extra = '' }) {
  const dir = tempDir('receipt-nginx-');
  const port = await freePort();
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const user = process.getuid() === 0 ? 'user root root;' : '';
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
    types { text/html html; application/octet-stream bin; text/plain txt; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    server {
        listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
        server_name localhost;
        root ${root};
        ${tls ? `ssl_certificate ${tls.cert}; ssl_certificate_key ${tls.key};` : ''}
        ${extra}
    }
}
`);
  const proc = spawn(NGINX, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.on('exit', r));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    try {
      const { connect } = await import('node:net');
      await new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(); });
        s.on('error', reject);
      });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`nginx did not listen: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGQUIT');
      await exited;
    },
  };
}

/** A certificate authority and a certificate for 127.0.0.1 and localhost it signed. */
export function makeCertificates() {
  const dir = tempDir('receipt-ca-');
  const f = (n) => path.join(dir, n);
  const ossl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=receipt test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
    '-keyout', f('server.key'), '-out', f('server.csr'));
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ossl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/** Resident memory of a process, in bytes. */
export function rssOf(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}
