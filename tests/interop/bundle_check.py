#!/usr/bin/python3
"""Checks an evidence bundle (receiptd evidence, docs/evidence.md) with no
code of receipt's: Python's hashlib, the `cryptography` package (Ed25519 for
signed notes) and `jwcrypto` (the receipt, ES256), with RFC 9162's proof
algorithms written from the RFC's text. It is the auditor's independent
second opinion that the e2e tests ask for.

usage: bundle_check.py BUNDLE.json [LOG_KEY]

Prints one line per check ("ok ..." or "not ok ...: why") and exits 1 when
any failed.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwcrypto import jwk, jws

failed = False


def report(name, problem=None):
    global failed
    if problem is None:
        print(f"ok {name}")
    else:
        failed = True
        print(f"not ok {name}: {problem}")


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162 section 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0 or first > second or not proof:
        return False
    if first & (first - 1) == 0:  # a power of two: the first root starts the path
        proof = [first_root] + list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def parse_key(text):
    """A signed-note verifier key: name+hex key ID+base64(0x01 || key)."""
    name, key_id, blob = text.split("+", 2)  # a name has no plus sign; base64 may
    raw = base64.b64decode(blob, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != key_id:
        raise ValueError("its key ID does not match the key")
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def signed_by(note, key):
    """Whether the note carries a valid signature by key (name, id, key)."""
    text, _, sigs = note.partition("\n\n")
    for line in sigs.splitlines():
        name, _, sig = line[2:].partition(" ")
        try:
            blob = base64.b64decode(sig, validate=True)
            if name == key[0] and blob[:4] == key[1]:
                key[2].verify(blob[4:], (text + "\n").encode())
                return True
        except (ValueError, InvalidSignature):
            pass
    return False


def open_checkpoint(note, keys):
    """C2SP signed-note opened with the keys, then tlog-checkpoint parsed:
    (origin, size, root)."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("no signature block")
    text += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise ValueError("a signature line without the em dash")
        name, sig = line[2:].split(" ", 1)
        blob = base64.b64decode(sig, validate=True)
        for kname, kid, key in keys:
            if kname == name and blob[:4] == kid:
                try:
                    key.verify(blob[4:], text.encode())
                except InvalidSignature:
                    raise ValueError(f"a bad signature by {name}")
                verified = True
    if not verified:
        raise ValueError("no signature by a known key")
    origin, size, root = text.split("\n")[:3]
    if not keys or origin != keys[0][0]:
        raise ValueError(f"the checkpoint is of log {origin}")
    return origin, int(size), base64.b64decode(root, validate=True)


def in_use(entry, at):
    """Whether a key history entry (since_ms, until_ms; null: open) covers
    the time at (milliseconds)."""
    since, until = entry.get("since_ms"), entry.get("until_ms")
    return (since is None or since <= at) and (until is None or at <= until)


EVENT_TIME = {"issued": "issued_ms", "bound": "bound_ms", "confirmed": "confirmed_ms",
              "corrupted": "confirmed_ms"}


def canonical(text):
    """RFC 8785 for the events receipt writes: integers, ASCII names, UTF-8
    strings; json.dumps with sorted keys and no spaces is the canonical form
    of such values."""
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) == text


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: bundle_check.py BUNDLE.json [LOG_KEY]")
    bundle = json.load(open(sys.argv[1], encoding="utf-8"))
    texts = [sys.argv[2]] if len(sys.argv) == 3 else [k["key"] for k in bundle["keys"]["log"]]
    keys = [parse_key(t) for t in texts]
    try:
        origin, size, root = open_checkpoint(bundle["checkpoint"], keys)
        report(f"the bundle's checkpoint ({size} leaves) opens with the log key")
    except ValueError as e:
        report("the bundle's checkpoint", str(e))
        return
    receipt = bundle["receipt"]
    final = None
    last = -1
    for n, ev in enumerate(bundle["events"], 1):
        salt = b64url(ev["leaf"]["salt"])
        text = ev["leaf"]["event"]
        event = json.loads(text)
        commitment = hashlib.sha256(salt + text.encode()).digest()
        proof = [base64.b64decode(h, validate=True) for h in ev["hashes"]]
        problems = []
        if len(salt) != 32:
            problems.append("the salt is not 32 bytes")
        if not canonical(text):
            problems.append("the event is not canonical")
        if event.get("delivery") != bundle["delivery"]:
            problems.append("the event names another delivery")
        if ev["index"] <= last:
            problems.append("out of log order")
        if not verify_inclusion(ev["index"], size, leaf_hash(commitment), proof, root):
            problems.append("its inclusion proof does not lead to the checkpoint's root")
        at = event.get(EVENT_TIME.get(event.get("type"), ""))
        if len(sys.argv) == 2 and at is not None:
            signers = [entry for entry, key in zip(bundle["keys"]["log"], keys)
                       if signed_by(ev["batch"]["checkpoint"], key)]
            if signers and not any(in_use(entry, at) for entry in signers):
                problems.append(f"its batch's checkpoint is signed by a log key not in use at {at}")
        try:
            _, bsize, broot = open_checkpoint(ev["batch"]["checkpoint"], keys)
            cons = [base64.b64decode(h, validate=True) for h in ev["batch"]["consistency"]]
            if not verify_consistency(bsize, size, broot, root, cons):
                problems.append(f"its batch's checkpoint ({bsize}) is not consistent with the bundle's")
        except ValueError as e:
            problems.append(f"its batch's checkpoint: {e}")
        last = ev["index"]
        if event.get("type") in ("confirmed", "corrupted"):
            final = event
        report(f"event {n} ({event.get('type')}, leaf {ev['index']})",
               "; ".join(problems) if problems else None)
    if receipt is None:
        return
    digest = base64.urlsafe_b64encode(hashlib.sha256(receipt.encode()).digest()).rstrip(b"=").decode()
    if final is None or final.get("receipt_sha256") != digest:
        report("the confirmation's event names the receipt", "it does not")
    else:
        report("the confirmation's event names the receipt")
    keyset = jwk.JWKSet()
    for k in bundle["keys"]["signing"]:
        keyset.add(jwk.JWK(**k["jwk"]))
    token = jws.JWS()
    try:
        token.deserialize(receipt)
        kid = token.jose_header.get("kid")
        token.verify(keyset.get_key(kid), alg="ES256")
        payload = json.loads(token.payload)
        if payload.get("delivery") != bundle["delivery"]:
            raise ValueError("the receipt is of another delivery")
        report("the receipt verifies (ES256) with the site's signing key")
        entry = next(k for k in bundle["keys"]["signing"] if k["jwk"].get("kid") == kid)
        at = payload["confirmed_at_ms"]
        report(f"the receipt's key {kid} was in use at its confirmed_at_ms",
               None if in_use(entry, at) else
               f"in use from {entry.get('since_ms')} until {entry.get('until_ms')}, not at {at}")
    except Exception as e:  # jwcrypto raises several kinds
        report("the receipt", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
    sys.exit(1 if failed else 0)
