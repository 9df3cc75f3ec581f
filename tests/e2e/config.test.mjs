// receiptd --config FILE: a server started from a file, the command line
// winning over it, errors that name the file and the line, --check on a
// file, and the shipped dist/receiptd.conf accepted as it is.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, runReceiptd, freePort, tempDir, repoRoot } from './lib/server.mjs';

const dirs = [];
function dir(prefix) {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

function writeConfig(text, mode = 0o644) {
  const file = path.join(dir('receipt-conf-'), 'receiptd.conf');
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
  return file;
}

describe('receiptd --config', () => {
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test('a server configured by its file, with the command line replacing what it names', async () => {
    const root = dir('receipt-root-');
    fs.writeFileSync(path.join(root, 'a.txt'), 'hello\n');
    const filePort = await freePort();
    const cliPort = await freePort();
    const conf = writeConfig(`# a test configuration
root ${root}
listen 127.0.0.1:${filePort}
public-url https://files.example
add-header X-From-File: 1
add-header X-Also-From-File: 2
no-inject
`);
    // --listen on the command line wins over the file's; so does the list
    // of --add-header, as a whole.
    const srv = await startServer({ root, port: cliPort, args: ['--config', conf, '--add-header', 'X-From-Command-Line: 3'] });
    try {
      const res = await fetch(`http://127.0.0.1:${cliPort}/a.txt`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-from-command-line'), '3');
      assert.equal(res.headers.get('x-from-file'), null);
      assert.equal(res.headers.get('x-also-from-file'), null);
      assert.match(srv.log(), /serving .* at https:\/\/files\.example\/\n/);
      await assert.rejects(fetch(`http://127.0.0.1:${filePort}/a.txt`));
    } finally {
      await srv.stop();
    }
  });

  test('errors name the file and the line, and change nothing', async () => {
    const root = dir('receipt-root-');
    const state = path.join(dir('receipt-state-'), 'state');
    const cases = [
      [`root ${root}\nlisten 127.0.0.1:0\nbogus 1\n`, ':3: unknown option \'bogus\''],
      [`root ${root}\n\n--listen 127.0.0.1:0\n`, ':3: option names go without their dashes'],
      [`root ${root}\nthreads many\n`, ':2: threads \'many\': expected a whole number from 1 to 256'],
      [`root ${root}\nlisten 127.0.0.1:1\nlisten 127.0.0.1:2\n`, ':3: listen is given already, on line 2'],
      [`root ${root}\nno-inject perhaps\n`, ':2: no-inject is a flag: give it alone, or with yes or no'],
      [`root ${root}\ntrusted-proxy 10.1.2.3/8\n`, ':2: trusted-proxy: \'10.1.2.3/8\' has address bits set beyond its prefix length'],
    ];
    for (const [text, words] of cases) {
      const conf = writeConfig(text);
      const r = await runReceiptd(['--config', conf, '--state-dir', state, '--admin-listen', 'off']);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.startsWith(`receiptd: ${conf}${words}`), `${r.stderr} lacks ${conf}${words}`);
      assert.equal(fs.existsSync(state), false, 'nothing was made');
    }
    // A password others may read.
    const secret = writeConfig(`root ${root}\nledger postgresql://receipt:s3cret@db.example/receipt\n`, 0o644);
    let r = await runReceiptd(['--config', secret, '--check']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /:2: ledger holds a password, and others may read the file \(mode 0644\): chmod o-r /);
    assert.doesNotMatch(r.stderr, /s3cret/);
    // A file others may change.
    const open = writeConfig(`root ${root}\n`, 0o666);
    r = await runReceiptd(['--config', open, '--check']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /may be changed by others \(mode 0666\): chmod g-w,o-w /);
  });

  // As the packaged file is kept (root:receiptd, 0640): writable by its
  // owner only. A group that holds other users may not change it; the
  // checks before a start and a reload say so as start-up does.
  test('a file its group may change is refused, by --check and --check-config too',
    { skip: process.getuid() !== 0 && 'giving the file another group needs root' }, async () => {
      const root = dir('receipt-root-');
      const state = path.join(dir('receipt-state-'), 'state');
      const file = writeConfig(`root ${root}\nstate-dir ${state}\n`, 0o664);
      const nobody = fs.readFileSync('/etc/passwd', 'utf8').split('\n')
        .map((l) => l.split(':')).find((f) => f[0] === 'nobody');
      fs.chownSync(file, 0, Number(nobody[3]));
      for (const mode of ['--check', '--check-config']) {
        const r = await runReceiptd(['--config', file, mode]);
        assert.equal(r.code, 2, `${mode}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`--config ${file} may be changed by the group \\S+ ` +
          `\\(mode 0664\\), which is not its owner's alone: chmod g-w,o-w ${file}`));
      }
      const started = await runReceiptd(['--config', file]);
      assert.equal(started.code, 2);
      assert.match(started.stderr, /chmod g-w,o-w/);
      assert.equal(fs.existsSync(state), false, 'nothing was made');
      fs.chmodSync(file, 0o644);
      const r = await runReceiptd(['--config', file, '--check']);
      assert.equal(r.code, 0, r.stderr);
    });

  test('--check validates a file, and the shipped sample is accepted as it is', async () => {
    const root = dir('receipt-root-');
    const state = path.join(dir('receipt-state-'), 'state');
    const good = writeConfig(`root ${root}\nstate-dir ${state}\nlisten 127.0.0.1:0\n`);
    let r = await runReceiptd(['--config', good, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configuration is valid/);

    // Every line of the sample is a comment: with a root named on the
    // command line it is a working configuration.
    const sample = path.join(repoRoot, 'dist', 'receiptd.conf');
    r = await runReceiptd(['--config', sample, '--root', root, '--state-dir', state, '--check']);
    assert.equal(r.code, 0, r.stderr);
    // Every option it shows is one receiptd takes, and the defaults it
    // shows are the defaults (uncommented, they change nothing).
    const shown = fs.readFileSync(sample, 'utf8').split('\n')
      .filter((l) => /^#[a-z][a-z-]+ /.test(l)).map((l) => l.slice(1));
    assert.ok(shown.length >= 25, `${shown.length} options in the sample`);
    const help = (await runReceiptd(['--help'])).stdout;
    for (const line of shown) assert.ok(help.includes(`--${line.split(' ')[0]}`), line);
    const literal = shown.filter((l) => !/ (FILE|DIR|URL|ID|N|CIDR|GLOB|HOST:PORT|NAME:VALUE)$/.test(l));
    const uncommented = writeConfig(`root ${root}\nstate-dir ${state}\n${literal.filter((l) => !l.startsWith('state-dir')).join('\n')}\n`);
    r = await runReceiptd(['--config', uncommented, '--check']);
    assert.equal(r.code, 0, r.stderr);
  });
});
