// `meson install` into a staging directory: every file an operator and a
// library user need lands where it should, a program builds against the
// installed libreceipt through pkg-config, and the systemd unit passes
// systemd-analyze verify.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RECEIPTD, tempDir } from './lib/server.mjs';

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
    ];
    for (const f of expected) assert.ok(fs.existsSync(f), `${f} is installed`);
    assert.equal(fs.statSync(path.join(root, 'bin/receiptd')).mode & 0o111, 0o111);
    // Nothing from the tests or the benchmarks.
    assert.deepEqual(fs.readdirSync(path.join(root, 'bin')).sort(), ['receipt', 'receiptd']);
  });

  test('a program builds against the installed libreceipt with pkg-config and runs', { skip: have('cc') && have('pkg-config') ? false : 'needs cc and pkg-config' }, () => {
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
      execFileSync('cc', ['-std=c17', '-Wall', '-Werror', src, '-o', exe, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
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
