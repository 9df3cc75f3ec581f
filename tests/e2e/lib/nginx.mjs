// Starts Debian's nginx on loopback for the suites that put receiptd behind
// a reverse proxy: a configuration of the test's own (the http block's
// servers), a prefix directory of its own, stopped with the suite.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, waitListening } from './server.mjs';

export const NGINX = process.env.NGINX || '/usr/sbin/nginx';

/** Why nginx cannot run here, or null when it can. */
export function nginxMissing() {
  return fs.existsSync(NGINX) ? null : `needs nginx (${NGINX}; scripts/install-deps installs nginx-light)`;
}

/**
 * Starts nginx with servers, the text of the http block's server blocks
 * (and anything else an http block may hold, such as upstreams). ports:
 * the ports it must listen on before this resolves. Returns {dir,
 * accessLog, errorLog, log(), stop()}; every server may use the log format
 * "proxied", which records the client's address and the forwarded headers.
 */
export async function startNginx({ servers, ports }) {
  const dir = tempDir('receipt-nginx-');
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const errorLog = path.join(dir, 'error.log');
  const accessLog = path.join(dir, 'access.log');
  // As root, workers would switch to nobody, who cannot read the test's
  // temporary directories (mode 0700).
  const user = process.getuid() === 0 ? 'user root root;' : '';
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} info;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    access_log ${accessLog};
    log_format proxied '$remote_addr "$request" $status xff="$http_x_forwarded_for"';
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${servers}
}
`);
  try {
    execFileSync(NGINX, ['-t', '-q', '-p', dir, '-e', errorLog, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`nginx rejects its configuration:\n${e.stderr}\n${fs.readFileSync(conf, 'utf8')}`);
  }
  const proc = spawn(NGINX, ['-p', dir, '-e', errorLog, '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const log = () => {
    let text = output;
    try {
      text += fs.readFileSync(errorLog, 'utf8');
    } catch {
      /* not written yet */
    }
    return text;
  };
  try {
    for (const port of ports) await waitListening(port, proc, log, 10000, 'nginx');
  } catch (e) {
    // Left running, it would hold the suite's process open after its tests.
    // SIGTERM: the master stops its workers with it.
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
    throw e;
  }
  return {
    dir,
    conf,
    accessLog,
    errorLog,
    log,
    /** Stops nginx (master and workers: SIGQUIT waits for them) and removes its directory. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGQUIT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The TLS settings of a front proxy, the way an operator writes them. */
/**
 * The lines of a location that passes requests to receiptd as
 * docs/deployment.md's recipes do: HTTP/1.1 keep-alive, the Host kept,
 * the client's address appended to X-Forwarded-For, the scheme, and no
 * Forwarded of the client's own.
 */
export function forwardingLines() {
  return `
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Forwarded "";`;
}

export function tlsServerLines({ cert, key }) {
  return `
        ssl_certificate ${cert};
        ssl_certificate_key ${key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;`;
}
