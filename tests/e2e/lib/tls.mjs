// A certificate authority made at test time with the openssl command, for
// the suites that speak TLS: a root, optional intermediates, and server
// certificates with chosen names, serials and validity. Keys are P-256 and
// written with mode 0600, as a server's key file must be.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './server.mjs';

export const OPENSSL = process.env.OPENSSL || 'openssl';

function openssl(args, opts = {}) {
  try {
    return execFileSync(OPENSSL, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed:\n${e.stderr || e.message}`);
  }
}

function newKey(file) {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  fs.chmodSync(file, 0o600);
}

// openssl ca's time format: YYYYMMDDHHMMSSZ.
function caTime(date) {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

let serialCounter = 0x1000;

/**
 * A CA in a directory of its own: {dir, cert, key, name, issue(), intermediate()}.
 * issue({names, serial, notBefore, notAfter, file}) makes a server
 * certificate for names (IP addresses or DNS names; default 127.0.0.1 and
 * localhost) and returns {cert, key, chain, serial}: chain is the
 * certificate followed by the intermediates up to (not including) the root,
 * which is what a server's certificate file holds.
 */
export function makeCA({ name = 'receipt test root CA', dir = tempDir('receipt-ca-'), parent = null } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, 'ca.key');
  const cert = path.join(dir, 'ca.pem');
  newKey(key);
  const caExt = path.join(dir, 'ca.ext');
  fs.writeFileSync(caExt, [
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    ...(parent ? ['authorityKeyIdentifier = keyid'] : []),
    '',
  ].join('\n'));
  if (parent) {
    const csr = path.join(dir, 'ca.csr');
    openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
    openssl(['x509', '-req', '-in', csr, '-CA', parent.cert, '-CAkey', parent.key,
      '-set_serial', String(serialCounter++), '-days', '60', '-extfile', caExt, '-out', cert]);
  } else {
    openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '60',
      '-extensions', 'v3_ca_test', '-config', writeReqConfig(dir, caExt), '-out', cert]);
  }
  // What a server's chain file appends after its own certificate.
  const chainTail = parent ? fs.readFileSync(cert, 'utf8') + parent.chainTail : '';

  // openssl ca keeps a database; only used for its -startdate/-enddate,
  // which openssl x509 does not have.
  fs.writeFileSync(path.join(dir, 'index.txt'), '');
  fs.writeFileSync(path.join(dir, 'index.txt.attr'), 'unique_subject = no\n');
  fs.mkdirSync(path.join(dir, 'issued'), { recursive: true });
  const caConf = path.join(dir, 'ca.cnf');
  fs.writeFileSync(caConf, [
    '[ca]', 'default_ca = test_ca',
    '[test_ca]',
    `dir = ${dir}`,
    'database = $dir/index.txt',
    'new_certs_dir = $dir/issued',
    'serial = $dir/serial',
    `certificate = ${cert}`,
    `private_key = ${key}`,
    'default_md = sha256',
    'policy = policy_any',
    'copy_extensions = none',
    'email_in_dn = no',
    '[policy_any]', 'commonName = supplied',
    '',
  ].join('\n'));

  const ca = {
    dir, cert, key, name, chainTail,
    issue({ names = ['127.0.0.1', 'localhost'], serial = serialCounter++, notBefore = null,
      notAfter = null, file = null } = {}) {
      const base = file || path.join(dir, `server-${serial.toString(16)}`);
      const leafKey = `${base}.key`;
      const leafCert = `${base}.pem`;
      newKey(leafKey);
      const csr = `${base}.csr`;
      openssl(['req', '-new', '-key', leafKey, '-subj', `/CN=${names[0]}`, '-out', csr]);
      const san = names.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      const ext = `${base}.ext`;
      fs.writeFileSync(ext, [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${san}`,
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'));
      const start = notBefore || new Date(Date.now() - 3600 * 1000);
      const end = notAfter || new Date(Date.now() + 30 * 24 * 3600 * 1000);
      fs.writeFileSync(path.join(dir, 'serial'), `${((h) => (h.length % 2 ? '0' + h : h))(serial.toString(16))}\n`);
      openssl(['ca', '-batch', '-notext', '-config', caConf, '-in', csr, '-out', leafCert,
        '-startdate', caTime(start), '-enddate', caTime(end), '-extfile', ext]);
      const chain = `${base}.chain.pem`;
      fs.writeFileSync(chain, fs.readFileSync(leafCert, 'utf8') + chainTail);
      return { cert: leafCert, key: leafKey, chain, serial };
    },
    intermediate(subName = 'receipt test intermediate CA') {
      return makeCA({ name: subName, dir: path.join(dir, `sub-${serialCounter}`), parent: ca });
    },
  };
  return ca;
}

function writeReqConfig(dir, extFile) {
  const conf = path.join(dir, 'req.cnf');
  fs.writeFileSync(conf, [
    '[req]', 'distinguished_name = dn', '[dn]',
    '[v3_ca_test]', fs.readFileSync(extFile, 'utf8'),
  ].join('\n'));
  return conf;
}

/** The serial number (hex, upper case, as openssl prints it) of a PEM certificate. */
export function serialOf(pem) {
  const out = openssl(['x509', '-noout', '-serial'], { input: pem });
  return out.trim().replace(/^serial=/, '').replace(/^0+(?=.)/, '').toUpperCase();
}

/** A serial number as serialOf() prints it. */
export function serialHex(n) {
  return n.toString(16).toUpperCase();
}

/** Copies a pair to the files a server was started with, as an operator's
 * renewal would (the key keeps mode 0600). */
export function installPair(pair, certFile, keyFile) {
  fs.copyFileSync(pair.chain, certFile);
  fs.copyFileSync(pair.key, keyFile);
  fs.chmodSync(keyFile, 0o600);
}
