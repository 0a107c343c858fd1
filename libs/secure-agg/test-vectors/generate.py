#!/usr/bin/env python3
"""Generates the secure-agg test vectors with implementations independent of the library:
Python's standard library (hmac, hashlib) for HKDF and Shamir arithmetic, and the openssl command
line tool for the AES-256-CTR keystream. Run: python3 generate.py > vectors.json"""
import hashlib
import hmac
import json
import subprocess

def hkdf(ikm, salt, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]

def det(label, n):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]

vectors = {}

# HKDF-SHA256: RFC 5869 appendix A.1 (published OKM) and labelled derivations as the library uses them.
vectors["hkdf_rfc5869_a1"] = {
    "ikm": "0b" * 22,
    "salt": "000102030405060708090a0b0c",
    "info": "f0f1f2f3f4f5f6f7f8f9",
    "length": 42,
    "okm": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
}
assert hkdf(bytes.fromhex("0b" * 22), bytes.fromhex("000102030405060708090a0b0c"),
            bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42).hex() == vectors["hkdf_rfc5869_a1"]["okm"]
derive = []
for label in ["share-encryption-key", "pairwise-mask-seed", "self-mask-seed", "stochastic-rounding", "graph-relabelling"]:
    secret, session = det(f"secret-{label}", 32), det(f"session-{label}", 32)
    info = f"fedsynth/secagg/v1/{label}".encode()
    derive.append({"label": label, "secret": secret.hex(), "session": session.hex(), "key": hkdf(secret, session, info, 32).hex()})
vectors["derive_key"] = derive

# PRG: AES-256-CTR with a zero IV over zeros, from the openssl CLI; first 64 little-endian uint32s.
prg = []
for i in range(3):
    key = det(f"prg-key-{i}", 32)
    ks = subprocess.run(["openssl", "enc", "-aes-256-ctr", "-K", key.hex(), "-iv", "00" * 16, "-nosalt"],
                        input=b"\0" * 256, capture_output=True, check=True).stdout
    prg.append({"key": key.hex(), "u32le": [int.from_bytes(ks[j:j + 4], "little") for j in range(0, 256, 4)]})
vectors["prg_aes256ctr"] = prg

# Shamir over GF(2^521 - 1): fixed coefficients (as the library draws them: 66 bytes, top byte masked
# to 1 bit), shares evaluated with Python integers.
P = (1 << 521) - 1
shamir = []
for case, (t, xs) in enumerate([(2, [1, 2, 3]), (3, [1, 2, 3, 4, 5]), (5, [3, 7, 11, 19, 23, 42, 1000])]):
    secret = det(f"shamir-secret-{case}", 32)
    coeff_bytes = []
    for k in range(t - 1):
        b = bytearray(det(f"shamir-coeff-{case}-{k}", 66))
        b[0] &= 1
        coeff_bytes.append(bytes(b))
    coeffs = [int.from_bytes(secret, "big")] + [int.from_bytes(b, "big") for b in coeff_bytes]
    shares = []
    for x in xs:
        y = 0
        for c in reversed(coeffs):
            y = (y * x + c) % P
        shares.append({"x": x, "y": y.to_bytes(66, "big").hex()})
    shamir.append({"secret": secret.hex(), "threshold": t, "coefficients": [b.hex() for b in coeff_bytes], "shares": shares})
vectors["shamir_m521"] = shamir

print(json.dumps(vectors, indent=1))
