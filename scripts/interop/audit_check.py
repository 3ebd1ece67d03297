#!/usr/bin/env python3
"""Checks an audit export of the telesub hub without the hub, as an outside auditor would.

Written from the README alone ("The audit trail: what each party keeps, and how it checks",
and `ExportAudit` under "Operations"), sharing no code with the hub:

    audit_check.py EXPORT.csv EXPORT.csv.proof --public-key KEY_OR_FILE [--prev-hash HEX]

1. every row's `hash` is SHA-256 of the row's fields, each preceded by its length as a
   big-endian 64-bit number, and every `prev_hash` is the `hash` of the row before;
2. the last row's leaf hash (SHA-256 of 0x00 and those bytes), folded up the inclusion
   proof (RFC 9162 section 2.1.3.2), gives the root of the signed checkpoint;
3. the checkpoint's Ed25519 signature checks with the verifier key.

Exit status 0 when all holds, 1 (with the reason) when not, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import hashlib
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Broken(Exception):
    """The export does not check; the message says where."""


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def micros(text: str) -> int:
    """An RFC 3339 time as microseconds since 1970."""
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def record_bytes(row: dict[str, str]) -> bytes:
    out = bytearray()

    def field(b: bytes) -> None:
        out.extend(len(b).to_bytes(8, "big"))
        out.extend(b)

    person = row.get("person", "")
    v3 = person != ""
    v2 = not v3 and row["attached"] != ""
    field(b"telesub-audit-v3" if v3 else b"telesub-audit-v2" if v2 else b"telesub-audit-v1")
    field(row["prev_hash"].encode())
    field(int(row["seq"]).to_bytes(8, "big", signed=True))
    field(micros(row["at"]).to_bytes(16, "big", signed=True))
    for name in ("request_id", "caller", "cert_fingerprint", "method", "outcome", "detail", "request_digest"):
        field(row[name].encode())
    if v2 or v3:
        field(row["attached"].encode())
    if v3:
        field(person.encode())
    return bytes(out)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def root_from_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    if index >= size:
        raise Broken(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Broken("the inclusion proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Broken("the inclusion proof is shorter than the tree is deep")
    return r


def sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip():
            continue
        if not (line.startswith("-----BEGIN TELESUB ") and line.endswith("-----")):
            raise Broken(f"unexpected line in the proof file: {line!r}")
        name = line[len("-----BEGIN TELESUB ") : -len("-----")]
        body = []
        for inner in lines:
            if inner == f"-----END TELESUB {name}-----":
                break
            body.append(inner + "\n")
        else:
            raise Broken(f"the {name} section has no end line")
        out[name] = "".join(body)
    return out


def open_checkpoint(note: str, key_text: str) -> tuple[int, bytes, str]:
    """Checks the note's signature; returns its tree size, root and time."""
    name, key_id, raw = key_text.strip().split("+", 2)
    raw_key = base64.b64decode(raw)
    if raw_key[:1] != b"\x01" or len(raw_key) != 33:
        raise Broken("the verifier key is not an Ed25519 key")
    if sha256(name.encode(), b"\n", raw_key)[:4].hex() != key_id.lower():
        raise Broken("the verifier key's id does not match its key")
    text, _, signatures = note.partition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        prefix = f"\u2014 {name} "
        if not line.startswith(prefix):
            continue
        sig = base64.b64decode(line[len(prefix) :])
        if sig[:4].hex() != key_id.lower():
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw_key[1:]).verify(sig[4:], text.encode())
        except InvalidSignature:
            raise Broken("the checkpoint's signature does not match its text") from None
        lines = text.splitlines()
        time = next((l[5:] for l in lines if l.startswith("time ")), "?")
        return int(lines[1]), base64.b64decode(lines[2]), time
    raise Broken(f"the checkpoint is not signed by {name} ({key_id})")


def check(export: str, proof_file: str, key_text: str, prev_hash: str | None) -> str:
    # utf-8-sig: the hub starts a CSV with the byte-order mark spreadsheet programs need.
    with open(export, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise Broken("the export holds no record")
    prev = prev_hash if prev_hash is not None else rows[0]["prev_hash"]
    for row in rows:
        if row["prev_hash"] != prev:
            raise Broken(f"record {row['seq']} does not follow the record before it")
        got = sha256(record_bytes(row)).hex()
        if got != row["hash"]:
            raise Broken(f"record {row['seq']} was changed: its fields hash to {got}, not {row['hash']}")
        prev = row["hash"]
    with open(proof_file, encoding="utf-8") as f:
        parts = sections(f.read())
    if "CHECKPOINT" not in parts or "INCLUSION PROOF" not in parts:
        raise Broken("the proof file lacks its CHECKPOINT or INCLUSION PROOF section")
    size, root, time = open_checkpoint(parts["CHECKPOINT"], key_text)
    proof = [bytes.fromhex(l.strip()) for l in parts["INCLUSION PROOF"].splitlines() if l.strip()]
    last = rows[-1]
    leaf = sha256(b"\x00", record_bytes(last))
    if root_from_proof(int(last["seq"]) - 1, size, leaf, proof) != root:
        raise Broken(f"record {last['seq']} is not in the signed tree of {size} records")
    return (
        f"OK: records {rows[0]['seq']} to {last['seq']} chain, and are in the tree of {size} records "
        f"signed at {time}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("proof")
    parser.add_argument("--public-key", required=True, help="the verifier key, or a file holding it")
    parser.add_argument("--prev-hash", help="the hash of the record before the export, if known")
    args = parser.parse_args()
    key = args.public_key
    if os.path.exists(key):
        with open(key, encoding="utf-8") as f:
            key = f.read()
    try:
        print(check(args.export, args.proof, key, args.prev_hash))
    except (Broken, ValueError, KeyError) as e:
        print(f"NOT VERIFIED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
