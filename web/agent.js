/* receipt browser agent (docs/protocol.md, docs/agent.md): trades this
 * page's ticket for plug-in data and, once the page has loaded, confirms
 * the delivery; fetches, hashes and confirms the files that links marked
 * for it download or open. WebCrypto only, no eval; never throws into the
 * page. */
(() => {
  'use strict';
  const me = document.currentScript;
  const warn = (why) => console.warn('receipt: ' + why);
  let api;
  try { // indexedDB throws where storage is blocked
    if (!window.isSecureContext || !crypto.subtle || !window.indexedDB) throw 0;
    api = new URL('/_receipt/', me ? me.src : location.href).href;
  } catch {
    warn('WebCrypto needs a secure context (HTTPS or localhost); this delivery is not confirmed.');
    return;
  }

  /* This page's ticket: the "receipt" entry of its navigation's
   * Server-Timing; pages served before the element lost its ticket carry
   * it in data-receipt-ticket. */
  let ticket = me && me.dataset.receiptTicket;
  try {
    const nav = performance.getEntriesByType('navigation')[0];
    const entry = nav && nav.serverTiming.find((t) => t.name === 'receipt');
    if (entry && entry.description) ticket = entry.description;
  } catch { /* no Server-Timing: the attribute, if any */ }

  const subtle = crypto.subtle;
  const te = new TextEncoder();
  const td = new TextDecoder();
  const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
  const loaded = new Promise((ok) =>
    document.readyState === 'complete' ? ok() : addEventListener('load', ok, { once: true }));
  const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')),
    (ch) => ch.charCodeAt(0));

  /* Database "receipt-agent", stores: keys (client key, keys K),
   * pending (unanswered confirmations), cache (the JWK Set). */
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
  /* store[op](...args) in a transaction of its own. */
  const idb = async (store, op, ...args) => {
    const d = await db();
    return new Promise((ok, fail) => {
      const tx = d.transaction(store, op.startsWith('get') ? 'readonly' : 'readwrite');
      const r = tx.objectStore(store)[op](...args);
      tx.oncomplete = () => ok(r.result);
      tx.onabort = () => fail(tx.error || r.error);
    });
  };

  /* The client key, made once per origin; the private key never leaves. */
  async function clientKey() {
    let c = await idb('keys', 'get', 'client');
    if (c) return c;
    const pair = await subtle.generateKey(ECDH, false, ['deriveBits']);
    const { x, y } = await subtle.exportKey('jwk', pair.publicKey);
    c = {
      priv: pair.privateKey,
      id: b64u(await subtle.digest('SHA-256',
        te.encode(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`))),
      header: b64u(await subtle.exportKey('raw', pair.publicKey)),
    };
    try {
      await idb('keys', 'add', c, 'client');
      return c;
    } catch (e) { /* another tab was first */
      return (await idb('keys', 'get', 'client')) || Promise.reject(e);
    }
  }

  /* A server key from the JWK Set, fetched when the cached set lacks it. */
  async function serverKey(kid) {
    const url = api + 'jwks.json';
    const find = (set) => set && set.keys.find((k) => k.kid === kid && k.use === 'enc');
    let jwk = find(await idb('cache', 'get', url));
    if (!jwk) {
      const res = await fetch(url, { credentials: 'omit' });
      if (!res.ok) throw Error('JWK Set: HTTP ' + res.status);
      const set = await res.json();
      await idb('cache', 'put', set, url);
      jwk = find(set);
    }
    return jwk || Promise.reject(Error('unknown server key ' + kid));
  }

  /* K (section 2), kept as a non-extractable AES-GCM key under its HKDF
   * info: client_id "." server_enc_kid. */
  async function sharedKey(c, kid) {
    const name = c.id + '.' + kid;
    let k = await idb('keys', 'get', name);
    if (k) return k;
    const { x, y } = await serverKey(kid);
    const pub = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x, y }, ECDH, false, []);
    const z = await subtle.deriveBits({ name: 'ECDH', public: pub }, c.priv, 256);
    const ikm = await subtle.importKey('raw', z, 'HKDF', false, ['deriveKey']);
    k = await subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: te.encode('receipt/v1'), info: te.encode(name) },
      ikm, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    await idb('keys', 'put', k, name);
    return k;
  }

  /* Opens the plug-in JWE (section 3) and checks that it is for us. */
  async function open(c, jwe) {
    const [h, ek, iv, ct, tag] = jwe.split('.');
    const hd = JSON.parse(td.decode(unb64u(h)));
    if (hd.alg !== 'dir' || hd.enc !== 'A256GCM' || hd.cty !== 'receipt-plugin+json' ||
        hd.kid !== c.id || ek !== '' || !tag) throw Error('unexpected plug-in data');
    const p = JSON.parse(td.decode(await subtle.decrypt(
      { name: 'AES-GCM', iv: unb64u(iv), additionalData: te.encode(h) },
      await sharedKey(c, hd.skid), new Uint8Array([...unb64u(ct), ...unb64u(tag)]))));
    if (p.v !== 1 || !/^[0-9a-f-]{36}$/.test(p.delivery) || p.client.id !== c.id ||
        p.server.kid !== hd.skid) throw Error('plug-in data not for us');
    return p;
  }

  /* The confirmation JWE for server key kid. */
  async function seal(c, kid, payload) {
    const h = b64u(te.encode(JSON.stringify(
      { alg: 'dir', enc: 'A256GCM', kid: c.id, skid: kid, cty: 'receipt-confirm+json' })));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const out = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: te.encode(h) },
      await sharedKey(c, kid), te.encode(JSON.stringify(payload)));
    return [h, '', b64u(iv), b64u(out.slice(0, -16)), b64u(out.slice(-16))].join('.');
  }

  /* A network error, 429 or 5xx keeps a confirmation pending: retried
   * after 2, 4, 8, 16 s, then on the next page load and on "online". */
  const busy = new Set();
  /* Where receipt:confirmed goes: document for this page's delivery, the
   * link for a download's. */
  const told = new Map();
  async function send(item, tries = 0) {
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
    } catch (e) { /* a network error */ }
    busy.delete(item.delivery);
    try {
      if (!answer && (status < 400 || status === 429 || status > 499)) {
        if (tries < 4) setTimeout(() => send(item, tries + 1), 2000 << tries);
        return;
      }
      await idb('pending', 'delete', item.delivery);
      const target = answer && told.get(answer.delivery);
      if (target) {
        told.delete(answer.delivery);
        target.dispatchEvent(new CustomEvent('receipt:confirmed', { detail: answer }));
      }
    } catch (e) { /* stays pending */ }
  }

  /* Sends what earlier pages could not; drops what has expired. */
  async function flush() {
    try {
      for (const item of await idb('pending', 'getAll')) {
        if (item.exp_ms < Date.now()) await idb('pending', 'delete', item.delivery);
        else send(item);
      }
    } catch (e) { /* nothing to send now */ }
  }

  /* Seals and sends the confirmation of plug-in data p, kept pending
   * until answered; target hears of the answer. */
  async function confirm(c, p, received, target) {
    const body = await seal(c, p.server.kid, {
      v: 1, delivery: p.delivery, ticket: p.ticket, client: { id: c.id }, received,
    });
    const item = { delivery: p.delivery, url: p.server.confirm, key: c.header, body,
      exp_ms: p.exp * 1000 };
    told.set(p.delivery, target);
    await idb('pending', 'put', item, p.delivery);
    await send(item);
  }

  async function main() {
    const c = await clientKey();
    flush();
    addEventListener('online', flush);
    if (!ticket) return;
    const res = await fetch(api + 'plugin/' + encodeURIComponent(ticket), {
      credentials: 'omit', cache: 'no-store', headers: { 'Receipt-Client-Key': c.header },
    });
    if (res.status !== 200) return; /* 404, 410: a saved page's old ticket */
    const p = await open(c, await res.text());
    await loaded;
    /* a browser cannot hash what it rendered */
    await confirm(c, p, { sha256: null, size: p.content.size, at_ms: Date.now() }, document);
  }

  /* Downloads: a click on a same-origin link with download,
   * data-receipt-download or data-receipt-open. The agent fetches the file
   * itself (Receipt-Fetch: download, with its key: the plug-in data come
   * back with the file), hashes what arrived, hands it over, and confirms
   * with the digest, so a transfer that altered the bytes is recorded
   * corrupted. Larger files than CAP, and any failure before the bytes are
   * in hand, fall back to the browser's own download or navigation. */
  const CAP = 256 * 1024 * 1024;
  const ours = new WeakSet(); /* links the agent clicks itself */

  function plain(url, name, win) {
    if (win) {
      win.location.href = url;
      return;
    }
    const a = document.createElement('a');
    a.href = url;
    if (name !== null) a.download = name;
    else a.target = '_blank';
    ours.add(a);
    document.body.append(a);
    a.click();
    a.remove();
  }

  async function fetchFile(link, url, name, win) {
    let blob = null;
    try {
      const c = await clientKey();
      const init = {
        credentials: 'same-origin', cache: 'no-store',
        headers: { 'Receipt-Client-Key': c.header, 'Receipt-Fetch': 'download' },
      };
      const head = await fetch(url, { ...init, method: 'HEAD' });
      const length = Number(head.headers.get('Content-Length'));
      if (head.status !== 200 || !(length <= CAP)) throw 0;
      const res = await fetch(url, init);
      if (res.status !== 200) throw 0;
      const bytes = await res.arrayBuffer();
      if (bytes.byteLength > CAP) throw 0;
      const digest = await subtle.digest('SHA-256', bytes);
      blob = new Blob([bytes], { type: res.headers.get('Content-Type') || '' });
      const href = URL.createObjectURL(blob);
      plain(href, name, win);
      setTimeout(() => URL.revokeObjectURL(href), 600000);
      const jwe = res.headers.get('Receipt-Plugin');
      if (!jwe) return; /* an untracked path */
      const p = await open(c, jwe);
      await confirm(c, p, { sha256: b64u(digest), size: bytes.byteLength, at_ms: Date.now() },
        link);
    } catch (e) {
      if (!blob) plain(url.href, name, win);
      else if (e) warn('this download is not confirmed: ' + e);
    }
  }

  document.addEventListener('click', (e) => {
    const link = e.target instanceof Element && e.target.closest('a[href]');
    if (!(link instanceof HTMLAnchorElement) || ours.has(link) || e.defaultPrevented ||
        e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const opens = link.hasAttribute('data-receipt-open');
    if (!opens && !link.hasAttribute('download') &&
        !link.hasAttribute('data-receipt-download')) return;
    let url;
    try { url = new URL(link.href); } catch { return; } /* an href that is no URL */
    if (url.origin !== location.origin) return;
    e.preventDefault();
    url.hash = '';
    let name = null;
    if (!opens) {
      name = link.download || url.pathname.split('/').pop();
      try { name = decodeURIComponent(name); } catch { /* kept encoded */ }
      name = name || 'download';
    }
    /* a window opened now, in the click, is no popup to block */
    fetchFile(link, url, name, opens ? window.open('', '_blank') : null);
  });

  main().catch((e) => warn('this delivery is not confirmed: ' + e));
})();
