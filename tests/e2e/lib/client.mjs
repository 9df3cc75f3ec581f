// An independent client of the receipt protocol, built on npm `jose` and
// WebCrypto only (no project code): what a third party would write from
// docs/protocol.md.
import { webcrypto } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, compactVerify, importJWK, calculateJwkThumbprint, base64url } from 'jose';

// node:crypto's webcrypto: the global one needs Node 19 or a flag on Node 18.
const subtle = webcrypto.subtle;
const enc = new TextEncoder();

export async function newClient() {
  const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const jwk = await subtle.exportKey('jwk', pair.publicKey);
  const id = await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y });
  const raw = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  return { pair, jwk, id, header: base64url.encode(raw), raw, keys: new Map() };
}

export async function fetchJwks(baseUrl) {
  const res = await fetch(baseUrl + '/_receipt/jwks.json');
  if (res.status !== 200) throw new Error(`jwks: ${res.status}`);
  return res.json();
}

/** K of docs/protocol.md section 3.5, derived with WebCrypto. */
export async function deriveKey(client, serverEncJwk) {
  const cached = client.keys.get(serverEncJwk.kid);
  if (cached) return cached;
  const serverPub = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: serverEncJwk.x, y: serverEncJwk.y },
    { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const z = await subtle.deriveBits({ name: 'ECDH', public: serverPub }, client.pair.privateKey, 256);
  const hkdfKey = await subtle.importKey('raw', z, 'HKDF', false, ['deriveBits']);
  const k = new Uint8Array(await subtle.deriveBits({
    name: 'HKDF', hash: 'SHA-256', salt: enc.encode('receipt/v1'),
    info: enc.encode(`${client.id}.${serverEncJwk.kid}`),
  }, hkdfKey, 256));
  client.keys.set(serverEncJwk.kid, k);
  return k;
}

export function encKey(jwks) {
  return jwks.keys.find((k) => k.use === 'enc');
}

export function sigKey(jwks) {
  return jwks.keys.find((k) => k.use === 'sig');
}

export async function openPlugin(client, jwks, jwe) {
  const k = await deriveKey(client, encKey(jwks));
  const { plaintext, protectedHeader } = await compactDecrypt(jwe, k);
  return { payload: JSON.parse(new TextDecoder().decode(plaintext)), header: protectedHeader };
}

export function confirmation(plugin, { sha256 = null, size = plugin.content.size, atMs = Date.now() } = {}) {
  return {
    v: 1,
    delivery: plugin.delivery,
    ticket: plugin.ticket,
    client: { id: plugin.client.id },
    received: { sha256, size, at_ms: atMs },
  };
}

export async function sealConfirmation(client, jwks, payload, { cty = 'receipt-confirm+json' } = {}) {
  const server = encKey(jwks);
  const k = await deriveKey(client, server);
  const bytes = typeof payload === 'string' ? enc.encode(payload) : enc.encode(JSON.stringify(payload));
  return new CompactEncrypt(bytes)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: client.id, skid: server.kid, cty })
    .encrypt(k);
}

/** A JWE made by hand, for headers that a JOSE library refuses to write. */
export async function craftJwe(header, payloadBytes, key, { encryptedKey = '' } = {}) {
  const h = base64url.encode(JSON.stringify(header));
  const iv = webcrypto.getRandomValues(new Uint8Array(12));
  const aes = await subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const out = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode(h), tagLength: 128 }, aes, payloadBytes));
  const ct = out.subarray(0, out.length - 16);
  const tag = out.subarray(out.length - 16);
  return [h, encryptedKey, base64url.encode(iv), base64url.encode(ct), base64url.encode(tag)].join('.');
}

export async function postConfirm(url, client, body, { contentType = 'application/jose', header } = {}) {
  const headers = { 'Content-Type': contentType };
  const key = header === undefined ? client?.header : header;
  if (key) headers['Receipt-Client-Key'] = key;
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* left null */ }
  return { status: res.status, json, text, headers: res.headers };
}

export async function verifyReceipt(jwks, receipt) {
  const sig = sigKey(jwks);
  const key = await importJWK({ kty: sig.kty, crv: sig.crv, x: sig.x, y: sig.y }, 'ES256');
  const { payload, protectedHeader } = await compactVerify(receipt, key);
  return { payload: JSON.parse(new TextDecoder().decode(payload)), header: protectedHeader };
}

export async function sha256b64url(bytes) {
  return base64url.encode(new Uint8Array(await subtle.digest('SHA-256', bytes)));
}
