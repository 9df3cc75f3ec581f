// Launches Debian's chromium headless through playwright-core, and watches
// what a page reports: uncaught errors, console messages, receipt events.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A name that resolves to loopback but is no secure context. */
export const INSECURE_HOST = 'insecure.test';

/**
 * trustCA: a PEM CA certificate that this browser trusts for servers, as
 * one installed in the system would be: it goes into the certificate store
 * (NSS) of a home directory made for the browser, with certutil
 * (libnss3-tools). Without it, only the system's CAs are trusted.
 */
export async function launch({ trustCA = null } = {}) {
  let env = process.env;
  let home = null;
  if (trustCA) {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'receipt-chromium-home-'));
    const db = path.join(home, '.pki', 'nssdb');
    fs.mkdirSync(db, { recursive: true });
    execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'receipt test CA', '-t', 'C,,', '-i', trustCA]);
    env = { ...process.env, HOME: home };
  }
  const browser = await chromium.launch({
    env,
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`,
    ],
  });
  if (home) browser.on('disconnected', () => fs.rmSync(home, { recursive: true, force: true }));
  return browser;
}

// Runs in every page before its own scripts (and regardless of its CSP):
// records receipt:confirmed events and CSP violations for the test to read.
function recorder() {
  window.__receipt = { confirmed: [], violations: [] };
  document.addEventListener('receipt:confirmed', (e) => window.__receipt.confirmed.push(e.detail));
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__receipt.violations.push({ directive: e.violatedDirective, uri: e.blockedURI, source: e.sourceFile }));
}

/** A new context with the recorder installed. */
export async function newContext(browser) {
  const context = await browser.newContext();
  await context.addInitScript(recorder);
  return context;
}

/**
 * Watches a page: errors (uncaught exceptions), console messages, and the
 * Receipt-Client-Key header the browser sent with its plug-in requests.
 */
export function watch(page) {
  const w = { errors: [], console: [], clientKeys: [], plugins: [], confirms: [] };
  page.on('pageerror', (e) => w.errors.push(String(e && e.stack || e)));
  page.on('console', (m) => w.console.push({ type: m.type(), text: m.text(), url: m.location().url || '' }));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/_receipt/plugin/')) {
      w.clientKeys.push(r.headers()['receipt-client-key']);
      w.plugins.push(r);
    }
    if (u.pathname === '/_receipt/confirm' && r.method() === 'POST') w.confirms.push(r);
  });
  /** Console messages other than Chromium's own note on a failed resource. */
  w.unexpected = (allow = []) => w.console.filter((m) =>
    !/^Failed to load resource: /.test(m.text) && !allow.some((re) => re.test(m.text)));
  return w;
}

/** Client ID (RFC 7638 thumbprint) of a Receipt-Client-Key header value. */
export function clientIdOf(header) {
  const raw = Buffer.from(header, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) throw new Error(`bad client key ${header}`);
  const x = raw.subarray(1, 33).toString('base64url');
  const y = raw.subarray(33).toString('base64url');
  const json = `{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`;
  return crypto.createHash('sha256').update(json).digest('base64url');
}

/** What the recorder saw in the page. */
export function recorded(page) {
  return page.evaluate(() => window.__receipt);
}

/** The agent's pending confirmations in the page's origin. */
export function pendingIn(page) {
  return page.evaluate(async () => {
    // Opening a database that does not exist would create it empty.
    if (!(await indexedDB.databases()).some((d) => d.name === 'receipt-agent')) return [];
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open('receipt-agent');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    try {
      if (!db.objectStoreNames.contains('pending')) return [];
      const all = await new Promise((resolve, reject) => {
        const g = db.transaction('pending').objectStore('pending').getAll();
        g.onsuccess = () => resolve(g.result);
        g.onerror = () => reject(g.error);
      });
      return all.map((p) => ({ delivery: p.delivery, url: p.url }));
    } finally {
      db.close();
    }
  });
}
