// `meson install` into a staging directory: every file an operator and a
// library user need lands where it should, an edited configuration
// survives a reinstall, a program builds against the installed libreceipt
// through pkg-config, and the systemd unit passes systemd-analyze verify;
// and receiptd, traced while it serves HTTPS, makes no system call and
// opens no socket family that the unit's filters would refuse.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RECEIPTD, tempDir, startServer, freePort, pgCreateDatabase, pgExec } from './lib/server.mjs';
import { runCli, clientDirs, removeOwnTempDirs, parseJsonLine } from './lib/cli.mjs';
import { makeCA } from './lib/tls.mjs';

const BUILD = path.dirname(RECEIPTD);

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function mesonValue(name) {
  const opts = JSON.parse(execFileSync('meson', ['introspect', '--buildoptions', BUILD], { encoding: 'utf8' }));
  return opts.find((o) => o.name === name).value;
}

const missing = !fs.existsSync(path.join(BUILD, 'build.ninja')) ? `${BUILD} is not a Meson build directory`
  : !have('meson') ? 'needs meson' : null;

describe('meson install', { skip: missing || false }, () => {
  let stage, prefix, root;

  before(() => {
    stage = tempDir('receipt-stage-');
    execFileSync('meson', ['install', '-C', BUILD, '--destdir', stage, '--quiet', '--no-rebuild'], { stdio: ['ignore', 'pipe', 'pipe'] });
    prefix = mesonValue('prefix');
    root = path.join(stage, prefix);
  });

  after(() => fs.rmSync(stage, { recursive: true, force: true }));

  test('the programs, the library with its header and pkg-config file, the man pages, the unit', () => {
    const libdir = path.join(stage, prefix, mesonValue('libdir'));
    const expected = [
      path.join(root, 'bin/receiptd'),
      path.join(root, 'bin/receipt'),
      path.join(root, 'include/receipt/receipt.h'),
      path.join(libdir, 'libreceipt.so.0'),
      path.join(libdir, 'libreceipt.a'),
      path.join(libdir, 'pkgconfig/libreceipt.pc'),
      path.join(root, 'share/man/man8/receiptd.8'),
      path.join(root, 'share/man/man1/receipt.1'),
      path.join(root, 'lib/systemd/system/receiptd.service'),
      path.join(root, 'lib/sysusers.d/receiptd.conf'),
      path.join(stage, prefix, mesonValue('sysconfdir'), 'receiptd/receiptd.conf'),
      path.join(root, 'share/doc/receipt/receiptd.conf'),
    ];
    for (const f of expected) assert.ok(fs.existsSync(f), `${f} is installed`);
    assert.equal(fs.statSync(path.join(root, 'bin/receiptd')).mode & 0o111, 0o111);
    // Nothing from the tests or the benchmarks.
    assert.deepEqual(fs.readdirSync(path.join(root, 'bin')).sort(), ['receipt', 'receiptd']);
  });

  test('the sample configuration is the shipped one, and an edited one survives a reinstall', () => {
    const etc = path.join(stage, prefix, mesonValue('sysconfdir'), 'receiptd/receiptd.conf');
    const shipped = fs.readFileSync(path.join(path.dirname(BUILD), 'dist/receiptd.conf'), 'utf8');
    assert.equal(fs.readFileSync(etc, 'utf8'), shipped);
    assert.equal(fs.statSync(etc).mode & 0o777, 0o644);
    fs.writeFileSync(etc, 'root /srv/www\n');
    execFileSync('meson', ['install', '-C', BUILD, '--destdir', stage, '--quiet', '--no-rebuild'], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(fs.readFileSync(etc, 'utf8'), 'root /srv/www\n');
    assert.equal(fs.readFileSync(path.join(root, 'share/doc/receipt/receiptd.conf'), 'utf8'), shipped);
  });

  test('the reload command of the unit, run as written, validates a configuration', () => {
    const unit = fs.readFileSync(path.join(root, 'lib/systemd/system/receiptd.service'), 'utf8');
    const bindir = path.join(prefix, mesonValue('bindir'));
    const check = unit.split('\n').find((l) => l.startsWith('ExecReload=') && l.includes('receiptd'));
    assert.ok(check, 'a receiptd command in ExecReload');
    const work = tempDir('receipt-reload-');
    try {
      const site = path.join(work, 'site');
      fs.mkdirSync(site);
      const conf = path.join(work, 'receiptd.conf');
      fs.writeFileSync(conf, `root ${site}\nstate-dir ${path.join(work, 'state')}\nadmin-listen off\n`);
      // The installed program, the test's configuration; every other word as in the unit.
      const argv = check.slice('ExecReload='.length).split(' ').map((w) =>
        w.startsWith(`${bindir}/`) ? path.join(stage, w) : w.endsWith('/receiptd.conf') ? conf : w);
      const ok = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: path.join(stage, prefix, mesonValue('libdir')) } });
      assert.equal(ok.status, 0, `${argv.join(' ')}:\n${ok.stdout}${ok.stderr}`);
      assert.match(ok.stdout, /configuration is valid/);
      fs.writeFileSync(conf, `root ${site}\nbogus 1\n`);
      const bad = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /receiptd\.conf:2: unknown option 'bogus'/);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('a program builds against the installed libreceipt with pkg-config and runs', { skip: have('cc') && have('clang') && have('pkg-config') ? false : 'needs cc, clang and pkg-config' }, () => {
    const libdir = path.join(stage, prefix, mesonValue('libdir'));
    const env = { ...process.env, PKG_CONFIG_PATH: path.join(libdir, 'pkgconfig'), PKG_CONFIG_SYSROOT_DIR: stage };
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libreceipt'], { env, encoding: 'utf8' }).trim().split(/\s+/);
    const dir = tempDir('receipt-pc-');
    try {
      const src = path.join(dir, 'app.c');
      fs.writeFileSync(src, `#include <receipt/receipt.h>
#include <stdio.h>
int main(void)
{
    receipt_client *c = NULL;
    if (receipt_client_new(&c) != RECEIPT_OK)
        return 1;
    int rc = receipt_client_set_ca_file(c, "/nonexistent/ca.pem") == RECEIPT_ERR_IO ? 0 : 2;
    printf("%s %s\\n", receipt_version(), receipt_strerror(RECEIPT_ERR_TLS));
    receipt_client_free(c);
    return rc;
}
`);
      const exe = path.join(dir, 'app');
      // A library built with sanitizers needs their runtime in the program
      // too, from the compiler that built it (clang, for make check's).
      const option = mesonValue('b_sanitize');
      const sanitize = Array.isArray(option) ? option.join(',') : option;
      const [compiler, extra] = sanitize && sanitize !== 'none' ? ['clang', [`-fsanitize=${sanitize}`]] : ['cc', []];
      execFileSync(compiler, ['-std=c17', '-Wall', '-Werror', ...extra, src, '-o', exe, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out = execFileSync(exe, { env: { ...process.env, LD_LIBRARY_PATH: libdir }, encoding: 'utf8' });
      assert.match(out, /^\d+\.\d+\.\d+ TLS failure/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the systemd unit: hardened as documented, and systemd-analyze verify accepts it',
    { skip: have('systemd-analyze') ? false : 'needs systemd-analyze (Debian package systemd), which this system lacks' }, () => {
      const unitFile = path.join(root, 'lib/systemd/system/receiptd.service');
      const unit = fs.readFileSync(unitFile, 'utf8');
      const bindir = path.join(prefix, mesonValue('bindir'));
      const sysconfdir = path.join(prefix, mesonValue('sysconfdir'));
      const lines = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
      const has = (l) => assert.ok(lines.includes(l), `${l} in the unit`);
      has(`ExecStart=${bindir}/receiptd --config ${sysconfdir}/receiptd/receiptd.conf`);
      has(`ExecReload=${bindir}/receiptd --config ${sysconfdir}/receiptd/receiptd.conf --check-config`);
      has('ExecReload=/bin/kill -HUP $MAINPID');
      has('User=receiptd');
      has('StateDirectory=receiptd');
      has('StateDirectoryMode=0700');
      has('ProtectSystem=strict');
      has('NoNewPrivileges=yes');
      has('RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX');
      has('SystemCallFilter=@system-service');
      has('AmbientCapabilities=CAP_NET_BIND_SERVICE');
      has('CapabilityBoundingSet=CAP_NET_BIND_SERVICE');
      assert.ok(!/@[a-z]+@/.test(unit), 'no placeholder left');

      // The installed unit names installed paths; verify it against the
      // staged files (systemd-analyze checks that commands exist and that
      // the man page named in Documentation= opens).
      const dir = tempDir('receipt-unit-');
      try {
        const staged = path.join(dir, 'receiptd.service');
        fs.writeFileSync(staged, unit.replaceAll(`${bindir}/`, `${path.join(stage, bindir)}/`));
        const args = ['verify', ...(have('man') ? [] : ['--man=no']), staged];
        const r = spawnSync('systemd-analyze', args, {
          encoding: 'utf8',
          env: { ...process.env, MANPATH: path.join(root, 'share/man'), SYSTEMD_LOG_LEVEL: 'notice' },
        });
        assert.equal(r.status, 0, `systemd-analyze ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
        assert.equal(r.stderr.trim(), '', 'no warning');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
});

/** Every system call in a systemd filter set, nested sets expanded. */
function filterSet(name, seen = new Set()) {
  const out = new Set();
  const text = execFileSync('systemd-analyze', ['syscall-filter', name], { encoding: 'utf8' });
  for (const raw of text.split('\n').slice(1)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('@')) {
      if (!seen.has(line)) {
        seen.add(line);
        for (const c of filterSet(line, seen)) out.add(c);
      }
    } else {
      out.add(line);
    }
  }
  return out;
}

/** The value of a Key= line of the shipped unit (the last, for a repeated key). */
function unitValues(key) {
  const unit = fs.readFileSync(path.join(path.dirname(BUILD), 'dist/receiptd.service.in'), 'utf8');
  return unit.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

const sanitized = (() => {
  try {
    const bin = fs.readFileSync(RECEIPTD);
    return bin.includes('__asan_init') || bin.includes('__ubsan_handle');
  } catch {
    return true;
  }
})();

function straceWorks() {
  if (!spawnSync('sh', ['-c', 'command -v strace'], { stdio: 'ignore' }).status === 0) return false;
  const r = spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

const traceSkip = sanitized ? 'a sanitizer build makes calls of its own (shadow memory, reports)'
  : !have('systemd-analyze') ? 'needs systemd-analyze (Debian package systemd)'
    : !have('strace') || !straceWorks() ? 'needs strace, and ptrace allowed here' : false;

/**
 * Runs receiptd under strace as the unit would run it (an unprivileged
 * user), serving HTTPS, redirecting, answering the admin API and reloading,
 * with ledgerArgs/env for its ledger; checks every system call and socket
 * family it used against the unit's filters.
 */
async function traceAtWork(ledgerArgs = [], env = {}) {
  {
    const [allowSet, denySet] = unitValues('SystemCallFilter');
    assert.equal(allowSet, '@system-service');
    const allowed = filterSet(allowSet);
    for (const group of denySet.replace(/^~/, '').split(/\s+/)) {
      for (const c of filterSet(group)) allowed.delete(c);
    }
    const families = new Set(unitValues('RestrictAddressFamilies')[0].split(/\s+/));

    // As under the unit: an unprivileged user (as root here, SQLite would
    // also fchown its journal to root, which it never does as another user).
    const ca = makeCA();
    const pair = ca.issue();
    const work = tempDir('receipt-trace-');
    const root = path.join(work, 'root');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(root, 'doc.bin'), Buffer.alloc(300000, 7));
    fs.writeFileSync(path.join(root, 'a.html'), '<p>x</p>');
    const cert = path.join(work, 'cert.pem');
    const key = path.join(work, 'key.pem');
    fs.copyFileSync(pair.chain, cert);
    fs.copyFileSync(pair.key, key);
    fs.chmodSync(key, 0o600);
    const asUser = process.getuid() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    if (asUser.length) {
      for (const f of [work, root, path.join(root, 'doc.bin'), path.join(root, 'a.html'), cert, key]) fs.chownSync(f, 65534, 65534);
    }
    const trace = path.join(tempDir('receipt-trace-out-'), 'trace');
    const log = path.join(work, 'access.log');
    const redirect = await freePort();
    const srv = await startServer({
      https: true,
      root,
      stateDir: path.join(work, 'state'),
      wrap: ['strace', '-f', '-qq', '-o', trace, ...asUser],
      env,
      args: ['--tls-cert', cert, '--tls-key', key, '--access-log', log,
        '--trusted-proxy', '127.0.0.1', '--per-ip-connections', '8',
        '--redirect-http', `127.0.0.1:${redirect}`, ...ledgerArgs],
    });
    let receiptd = 0;
    try {
      // receiptd is the child of strace (setpriv became receiptd).
      const kids = fs.readFileSync(`/proc/${srv.proc.pid}/task/${srv.proc.pid}/children`, 'utf8').trim().split(/\s+/);
      receiptd = Number(kids[0]);
      const c = await clientDirs();
      const r = await runCli(['fetch', `${srv.url}/doc.bin`, '-o', c.out('doc.bin'), '--json', '--cacert', ca.cert, ...c.args()],
        { env: { CURL_CA_BUNDLE: '', SSL_CERT_FILE: '', SSL_CERT_DIR: '' } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(parseJsonLine(r.stdout).status, 'confirmed');
      execFileSync('curl', ['-sS', '-o', '/dev/null', '--cacert', ca.cert, '-H', 'X-Forwarded-For: 192.0.2.1', `${srv.url}/a.html`]);
      execFileSync('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${redirect}/a.html`]);
      execFileSync('curl', ['-sS', '-o', '/dev/null', '-H', `Authorization: Bearer ${srv.adminToken()}`, `${srv.adminUrl}/metrics`]);
      execFileSync('curl', ['-sS', '-o', '/dev/null', '-H', `Authorization: Bearer ${srv.adminToken()}`, `${srv.adminUrl}/api/deliveries`]);
      process.kill(receiptd, 'SIGHUP');
      await new Promise((res) => setTimeout(res, 300));
    } finally {
      if (receiptd) process.kill(receiptd, 'SIGTERM');
      await srv.exited;
    }
    // From receiptd's execve on: what setpriv did before is no part of it
    // (systemd installs the filter just before that execve).
    const all = fs.readFileSync(trace, 'utf8').split('\n');
    const start = all.findIndex((l) => l.includes(`execve("${RECEIPTD}"`) && / = 0$/.test(l));
    assert.ok(start >= 0, 'the trace holds receiptd\'s execve');
    const used = new Set();
    const usedFamilies = new Set();
    for (const line of all.slice(start)) {
      const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]/.exec(line);
      if (m && m[1] !== 'exit' && !line.includes('resumed>') ) used.add(m[1]);
      const f = /\bsocket\((AF_[A-Z0-9]+)/.exec(line);
      if (f) usedFamilies.add(f[1]);
    }
    assert.ok(used.has('accept4') || used.has('accept'), `the trace saw receiptd work: ${[...used].join(' ')}`);
    const refused = [...used].filter((c) => !allowed.has(c));
    assert.deepEqual(refused, [], `system calls the unit's filter would refuse (EPERM): ${refused.join(' ')}`);
    const foreign = [...usedFamilies].filter((f) => !families.has(f));
    assert.deepEqual(foreign, [], `socket families outside RestrictAddressFamilies: ${foreign.join(' ')}`);
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(path.dirname(trace), { recursive: true, force: true });
  }
}

describe('the unit\'s filters and receiptd at work', { skip: traceSkip }, () => {
  after(() => removeOwnTempDirs());

  test('every system call and socket family receiptd uses serving HTTPS is one the unit allows', { timeout: 120000 }, async () => {
    await traceAtWork();
  });

  test('the same with its ledger on PostgreSQL, reached over TCP with a password',
    { timeout: 120000, skip: process.env.RECEIPT_TEST_PG_PASSWORD ? false : 'no PostgreSQL server: run under tests/with-postgres (make check does)' },
    async () => {
      const db = pgCreateDatabase('trace');
      pgExec(db, `ALTER DATABASE ${db} OWNER TO receipt_pw`);
      const url = `postgresql://receipt_pw@127.0.0.1:${process.env.RECEIPT_TEST_PG_PORT}/${db}`;
      await traceAtWork(['--ledger', url], { PGPASSWORD: process.env.RECEIPT_TEST_PG_PASSWORD });
    });
});
