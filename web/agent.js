/*
 * receipt browser agent: confirms that this page reached this browser.
 *
 * receiptd embeds <script src="/_receipt/agent.js" data-receipt-ticket="..."
 * async> into every HTML page it delivers. This script trades the ticket for
 * plug-in data encrypted to a key pair kept in this origin's IndexedDB, and
 * once the page has loaded sends the encrypted confirmation back
 * (PROTOCOL.md sections 2 to 7; docs/agent.md). WebCrypto only, no eval,
 * no inline code; it never throws into the page.
 */
(() => {
  'use strict';
  const me = document.currentScript;
  const ticket = me && me.dataset.receiptTicket;
  if (!ticket) return;
  const warn = (why) => console.warn('receipt: ' + why);
  if (!window.isSecureContext || !window.crypto || !crypto.subtle || !window.indexedDB) {
    warn('WebCrypto needs a secure context (HTTPS or localhost); this delivery is not confirmed.');
    return;
  }

  const subtle = crypto.subtle;
  const te = new TextEncoder();
  const td = new TextDecoder();
  const api = new URL('/_receipt/', me.src).href;
  const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
  const loaded = new Promise((ok) => {
    if (document.readyState === 'complete') ok();
    else addEventListener('load', ok, { once: true });
  });

  const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')),
    (ch) => ch.charCodeAt(0));

  /* IndexedDB "receipt-agent": keys (the client key, derived keys K),
   * pending (confirmations not answered yet), cache (the JWK Set). */
  let dbp;
  const db = () => dbp || (dbp = new Promise((ok, fail) => {
    const r = indexedDB.open('receipt-agent', 1);
    r.onupgradeneeded = () => ['keys', 'pending', 'cache'].forEach((s) => r.result.createObjectStore(s));
    r.onsuccess = () => {
      r.result.onversionchange = () => r.result.close();
      ok(r.result);
    };
    r.onerror = () => fail(r.error);
  }));
  /* One request, op(...args) on store, in a transaction of its own. */
  const idb = async (store, op, ...args) => {
    const d = await db();
    return new Promise((ok, fail) => {
      const tx = d.transaction(store, /^get/.test(op) ? 'readonly' : 'readwrite');
      const r = tx.objectStore(store)[op](...args);
      tx.oncomplete = () => ok(r.result);
      tx.onabort = () => fail(tx.error || r.error);
    });
  };

  /* The client key: private key non-extractable, made once per origin. */
  async function clientKey() {
    let c = await idb('keys', 'get', 'client');
    if (c) return c;
    const pair = await subtle.generateKey(ECDH, false, ['deriveBits']);
    const jwk = await subtle.exportKey('jwk', pair.publicKey);
    const thumb = `{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
    c = {
      priv: pair.privateKey,
      id: b64u(await subtle.digest('SHA-256', te.encode(thumb))),
      header: b64u(await subtle.exportKey('raw', pair.publicKey)),
    };
    try {
      await idb('keys', 'add', c, 'client');
      return c;
    } catch (e) { /* another tab stored its key first: use that one */
      const other = await idb('keys', 'get', 'client');
      if (!other) throw e;
      return other;
    }
  }

  /* The JWK Set, fetched when no cached copy names the key wanted. */
  async function serverKey(kid) {
    const url = api + 'jwks.json';
    const find = (set) => set && set.keys.find((k) => k.kid === kid && k.use === 'enc');
    let jwk = find(await idb('cache', 'get', url));
    if (!jwk) {
      const res = await fetch(url, { credentials: 'omit' });
      if (res.status !== 200) throw Error('JWK Set: HTTP ' + res.status);
      const set = await res.json();
      await idb('cache', 'put', { keys: set.keys, at_ms: Date.now() }, url);
      jwk = find(set);
    }
    if (!jwk) throw Error('unknown server key ' + kid);
    return jwk;
  }

  /* K of section 2, cached per client and server key as a non-extractable
   * AES-GCM key. Its name is the HKDF info: client_id "." server_enc_kid. */
  async function sharedKey(c, kid) {
    const name = c.id + '.' + kid;
    let k = await idb('keys', 'get', name);
    if (k) return k;
    const jwk = await serverKey(kid);
    const pub = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
      ECDH, false, []);
    const z = await subtle.deriveBits({ name: 'ECDH', public: pub }, c.priv, 256);
    const ikm = await subtle.importKey('raw', z, 'HKDF', false, ['deriveKey']);
    k = await subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: te.encode('receipt/v1'), info: te.encode(name) },
      ikm, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    await idb('keys', 'put', k, name);
    return k;
  }

  /* Opens the plug-in JWE (section 3) and checks that it is ours. */
  async function open(c, jwe) {
    const [h, ek, iv, ct, tag] = jwe.split('.');
    const hdr = JSON.parse(td.decode(unb64u(h)));
    if (hdr.alg !== 'dir' || hdr.enc !== 'A256GCM' || hdr.cty !== 'receipt-plugin+json' ||
        hdr.kid !== c.id || ek !== '' || !tag) throw Error('unexpected plug-in data');
    const data = new Uint8Array([...unb64u(ct), ...unb64u(tag)]);
    const plain = await subtle.decrypt({ name: 'AES-GCM', iv: unb64u(iv), additionalData: te.encode(h) },
      await sharedKey(c, hdr.skid), data);
    const p = JSON.parse(td.decode(plain));
    if (p.v !== 1 || !/^[0-9a-f-]{36}$/.test(p.delivery) || p.client.id !== c.id ||
        p.server.kid !== hdr.skid || !/^https?:\/\//.test(p.server.confirm)) {
      throw Error('plug-in data for another delivery or client');
    }
    return p;
  }

  /* Encrypts the confirmation payload for the server key kid. */
  async function seal(c, kid, payload) {
    const h = b64u(te.encode(JSON.stringify(
      { alg: 'dir', enc: 'A256GCM', kid: c.id, skid: kid, cty: 'receipt-confirm+json' })));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const out = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: te.encode(h) },
      await sharedKey(c, kid), te.encode(JSON.stringify(payload)));
    return [h, '', b64u(iv), b64u(out.slice(0, -16)), b64u(out.slice(-16))].join('.');
  }

  /* Sends one pending confirmation. Network errors, 429 and 5xx keep it
   * (retried with backoff while the page is open, then on the next page
   * load and on "online"); any other answer settles it. */
  const busy = new Set();
  async function send(item, own, tries = 0) {
    if (busy.has(item.delivery)) return;
    busy.add(item.delivery);
    let status = 0;
    let answer = null;
    try {
      const res = await fetch(item.url, {
        method: 'POST', keepalive: true, credentials: 'omit', body: item.body,
        headers: { 'Content-Type': 'application/jose', 'Receipt-Client-Key': item.key },
      });
      status = res.status;
      if (status === 200) answer = await res.json();
    } catch (e) { /* a network error, or a 200 without JSON: both retried */ }
    busy.delete(item.delivery);
    try {
      if (!answer && (status === 0 || status === 200 || status === 429 || status >= 500)) {
        if (tries < 4) setTimeout(() => send(item, own, tries + 1), 2000 << tries);
        return;
      }
      await idb('pending', 'delete', item.delivery);
      if (own && answer && answer.delivery === item.delivery) {
        document.dispatchEvent(new CustomEvent('receipt:confirmed', { detail: answer }));
      }
    } catch (e) { /* stays pending */ }
  }

  /* Sends what earlier pages of this origin could not; drops the expired. */
  async function flush() {
    try {
      for (const item of await idb('pending', 'getAll')) {
        if (item.exp_ms < Date.now()) await idb('pending', 'delete', item.delivery);
        else send(item, false);
      }
    } catch (e) { /* nothing to flush now */ }
  }

  async function main() {
    const c = await clientKey();
    flush();
    addEventListener('online', flush);
    const res = await fetch(api + 'plugin/' + encodeURIComponent(ticket), {
      credentials: 'omit', cache: 'no-store', headers: { 'Receipt-Client-Key': c.header },
    });
    /* 404 or 410: a saved page with an expired or foreign ticket; normal. */
    if (res.status !== 200) return;
    const p = await open(c, await res.text());
    await loaded;
    const nav = performance.getEntriesByType('navigation')[0];
    const body = await seal(c, p.server.kid, {
      v: 1,
      delivery: p.delivery,
      ticket: p.ticket,
      client: { id: c.id },
      received: {
        sha256: null, /* a browser cannot hash the bytes it rendered */
        size: p.content.size,
        at_ms: Math.round(nav ? performance.timeOrigin + nav.responseEnd : Date.now()),
      },
    });
    const item = { delivery: p.delivery, url: p.server.confirm, key: c.header, body, exp_ms: p.exp * 1000 };
    await idb('pending', 'put', item, item.delivery);
    await send(item, true);
  }

  main().catch((e) => warn('this delivery is not confirmed: ' + (e && e.message)));
})();
