#!/usr/bin/env python3
"""Generates the weak-key vectors for Ed25519 and X25519 with big-integer curve arithmetic written
here, on Python's standard library only (hashlib for SHA-512), independent of the library's
TypeScript: affine Edwards formulas with field inversions (the library uses extended coordinates),
square roots by the Ed25519-paper method (the library follows RFC 8032 section 5.1.3), and the RFC
7748 Montgomery ladder for X25519. Every value is derived from p, d, L and the base point, then
checked against the values published by RFC 8032, libsodium and RFC 7748 (copied below as data).
Deterministic: run `python3 generate_weak_keys.py > ed25519-weak-keys.json`."""
import hashlib
import json

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def inv(x):
    return pow(x, P - 2, P)


# --- Edwards curve -x^2 + y^2 = 1 + d x^2 y^2, affine points (x, y) -------------------------------
IDENTITY = (0, 1)


def on_curve(pt):
    x, y = pt
    return (-x * x + y * y - 1 - D * x * x * y * y) % P == 0


def add(p1, p2):
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + y1 * x2) * inv(1 + t) % P, (y1 * y2 + x1 * x2) * inv(1 - t) % P)


def neg(pt):
    return ((-pt[0]) % P, pt[1])


def mul(k, pt):
    acc = IDENTITY
    while k:
        if k & 1:
            acc = add(acc, pt)
        pt = add(pt, pt)
        k >>= 1
    return acc


def order_dividing_8(pt):
    """The order of pt when it divides 8, else None."""
    q = pt
    for k in (1, 2, 4, 8):
        if q == IDENTITY:
            return k
        q = add(q, q)
    return None


def sqrt_ratio(u, v):
    """A square root of u/v mod p, or None (Bernstein et al., Ed25519 paper, section 5)."""
    r = u * inv(v) % P
    x = pow(r, (P + 3) // 8, P)
    if x * x % P == r:
        return x
    x = x * SQRT_M1 % P
    return x if x * x % P == r else None


def decode(b, strict=True):
    """Point from 32 bytes. strict: refuse y >= p and x = 0 with the sign bit set (RFC 8032)."""
    n = int.from_bytes(b, "little")
    y, sign = n & (2**255 - 1), n >> 255
    if y >= P:
        if strict:
            return None
        y -= P
    x = sqrt_ratio(y * y - 1, D * y * y + 1)
    if x is None:
        return None
    if x == 0 and sign:
        if strict:
            return None
        return (0, y)
    if x & 1 != sign:
        x = P - x
    return (x, y)


def encode(pt):
    x, y = pt
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


BASE = decode((4 * inv(5) % P).to_bytes(32, "little"))
assert BASE is not None and BASE[0] & 1 == 0 and mul(L, BASE) == IDENTITY

# --- the eight points of order dividing 8 ---------------------------------------------------------
# [L]Q for any curve point Q lies in the torsion subgroup; walk y = 2, 3, ... until one has order 8,
# then the subgroup is its eight multiples.
t8, y = None, 2
while t8 is None:
    q = decode(y.to_bytes(32, "little"))
    y += 1
    if q is not None and order_dividing_8(mul(L, q)) == 8:
        t8 = mul(L, q)
torsion = [mul(k, t8) for k in range(8)]
assert len(set(torsion)) == 8 and all(on_curve(t) for t in torsion)
small_order = sorted(({"order": order_dividing_8(t), "encoding": encode(t).hex()} for t in torsion),
                     key=lambda e: (e["order"], e["encoding"]))

# Every encoding that decodes (leniently) to one of them: canonical, the sign bit flipped, and
# y + p where it still fits in 255 bits (only y = 0 and y = 1 do).
encodings = {}
for t in torsion:
    enc = encode(t)
    encodings[enc.hex()] = {"kind": "canonical", "order": order_dividing_8(t)}
for t in torsion:
    flipped = bytearray(encode(t))
    flipped[31] ^= 0x80
    if flipped.hex() not in encodings:
        assert decode(bytes(flipped)) is None and t[0] == 0  # x = 0 with the sign bit set
        encodings[flipped.hex()] = {"kind": "sign bit set with x = 0", "order": order_dividing_8(t)}
for t in torsion:
    if t[1] + P < 2**255:
        for sign in (0, 1):
            enc = ((t[1] + P) | (sign << 255)).to_bytes(32, "little")
            assert decode(enc) is None and decode(enc, strict=False) in torsion
            encodings.setdefault(enc.hex(), {"kind": "non-canonical y + p", "order": order_dividing_8(t)})
small_order_encodings = [{"encoding": k, **v} for k, v in sorted(encodings.items())]
assert len(small_order_encodings) == 14

# libsodium's blocklist (crypto_core/ed25519 ge25519_has_small_order, the list also given in
# "Taming the many EdDSAs" and novifinancial/ed25519-speccheck): y coordinates compared after
# masking the sign bit. Copied as published; the derivation above must give exactly this set.
LIBSODIUM_BLOCKLIST = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # 0 (order 4)
    "0100000000000000000000000000000000000000000000000000000000000000",  # 1 (order 1)
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1 (order 2)
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p (= 0, order 4)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 (= 1, order 1)
]
masked = sorted({e["encoding"][:62] + "%02x" % (int(e["encoding"][62:], 16) & 0x7F) for e in small_order_encodings})
assert masked == sorted(LIBSODIUM_BLOCKLIST), masked

# --- RFC 8032 section 7.1, test 1 -----------------------------------------------------------------
RFC8032_TEST1 = {
    "secret_key": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "message": "",
    "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
}


def expand(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def challenge(r_enc, a_enc, msg):
    return int.from_bytes(hashlib.sha512(r_enc + a_enc + msg).digest(), "little") % L


def sign(seed, msg, a_enc=None):
    a, prefix = expand(seed)
    a_enc = a_enc or encode(mul(a, BASE))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % L
    r_enc = encode(mul(r, BASE))
    s = (r + challenge(r_enc, a_enc, msg) * a) % L
    return r_enc + s.to_bytes(32, "little")


def verify_cofactorless(a_enc, msg, sig, strict=True):
    """[S]B == R + [k]A with S < L; the equation without the cofactor. strict: RFC 8032 decoding."""
    a_pt, r_pt = decode(a_enc, strict), decode(sig[:32], strict)
    s = int.from_bytes(sig[32:], "little")
    if a_pt is None or r_pt is None or s >= L:
        return False
    return mul(s, BASE) == add(r_pt, mul(challenge(sig[:32], a_enc, msg), a_pt))


seed1 = bytes.fromhex(RFC8032_TEST1["secret_key"])
a1, _ = expand(seed1)
A1 = mul(a1, BASE)
assert encode(A1).hex() == RFC8032_TEST1["public_key"]
sig1 = sign(seed1, b"")
assert sig1.hex() == RFC8032_TEST1["signature"]
assert verify_cofactorless(encode(A1), b"", sig1)

# S + L: the same R, a scalar >= L that is congruent to S. Malleable verifiers accept it.
s1 = int.from_bytes(sig1[32:], "little")
assert s1 < L and s1 + L < 2**256
non_canonical_s = {"public_key": encode(A1).hex(), "message": "", "signature": (sig1[:32] + (s1 + L).to_bytes(32, "little")).hex()}


def det_message(label, i):
    return f"fedsynth/secagg/weak-keys/{label}/{i}".encode()


# A signature whose R is the identity encoding, made by the holder of a valid key: S = k a mod L.
# [S]B - [k]A = identity = R, so a cofactorless verifier without an R check accepts it.
r_id = encode(IDENTITY)
msg = det_message("small-order-r", 0)
k = challenge(r_id, encode(A1), msg)
small_order_r = {"public_key": encode(A1).hex(), "message": msg.hex(),
                 "signature": (r_id + (k * a1 % L).to_bytes(32, "little")).hex()}
assert verify_cofactorless(encode(A1), msg, bytes.fromhex(small_order_r["signature"]))

# Forgeries under each small-order key encoding, with no secret: R = [r]B, S = r for a fixed r, and
# a message whose challenge k (hashed over the encoding as given) is a multiple of the key's order,
# so [k]A = identity and [S]B = R + [k]A holds. R is an ordinary point: only a key check stops
# these. A verifier that decodes non-canonical encodings leniently accepts all 14.
forgeries = []
r = int.from_bytes(hashlib.sha512(b"fedsynth/secagg/weak-keys/forgery-r").digest(), "little") % L
r_enc = encode(mul(r, BASE))
for e in small_order_encodings:
    a_enc = bytes.fromhex(e["encoding"])
    for i in range(1000):
        msg = det_message("forgery-" + e["encoding"], i)
        if challenge(r_enc, a_enc, msg) % e["order"] == 0:
            break
    sig = r_enc + r.to_bytes(32, "little")
    assert verify_cofactorless(a_enc, msg, sig, strict=e["kind"] == "canonical")
    forgeries.append({"public_key": e["encoding"], "kind": e["kind"], "order": e["order"],
                      "message": msg.hex(), "signature": sig.hex()})

# Mixed-order keys: RFC 8032 test key 1 plus each non-identity torsion point. With the secret of
# test key 1 one can sign, under A1 + T, any message whose challenge kills T.
mixed_order = []
for t in torsion:
    if t == IDENTITY:
        continue
    a_enc = encode(add(A1, t))
    assert decode(a_enc) is not None and mul(L, decode(a_enc)) != IDENTITY
    order = order_dividing_8(t)
    for i in range(1000):
        msg = det_message("mixed-" + a_enc.hex()[:8], i)
        if challenge(sign(seed1, msg, a_enc)[:32], a_enc, msg) % order == 0:
            break
    sig = sign(seed1, msg, a_enc)
    assert verify_cofactorless(a_enc, msg, sig)
    mixed_order.append({"public_key": a_enc.hex(), "torsion_order": order, "message": msg.hex(), "signature": sig.hex()})

# Encodings that are not points: the first canonical y values (sign 0) with no x.
not_on_curve, y = [], 2
while len(not_on_curve) < 4:
    enc = y.to_bytes(32, "little")
    if decode(enc) is None:
        not_on_curve.append(enc.hex())
    y += 1

# Non-canonical y + p encodings of points that are not small order (y in 2..18).
non_canonical_y = []
for y in range(2, 19):
    enc = (y + P).to_bytes(32, "little")
    pt = decode(enc, strict=False)
    if pt is not None:
        non_canonical_y.append({"encoding": enc.hex(), "y": y})

# --- X25519 (RFC 7748) ---------------------------------------------------------------------------
A24 = 121665


def x25519(k_bytes, u_bytes):
    k = bytearray(k_bytes)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    u = int.from_bytes(u_bytes, "little") & (2**255 - 1)
    x1, x2, z2, x3, z3, swap = u, 1, 0, u, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + A24 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


# Low-order u: the images u = (1 + y) / (1 - y) of the Edwards torsion points (the identity maps
# to the point at infinity), and the twist's point of order 4, u = -1 (2P = (0, 0) forces
# u^2 = 1). Then the non-canonical u + p that fit in 255 bits.
low_u = {(1 + t[1]) * inv(1 - t[1]) % P for t in torsion if t != IDENTITY} | {P - 1}
low_u |= {u + P for u in low_u if u + P < 2**255}
low_u = sorted(low_u)
RFC7748_LOW_ORDER = sorted([0, 1, 325606250916557431795983626356110631294008115727848805560023387167927233504,
                            39382357235489614581723060781553021112529911719440698176882885853963445705823,
                            P - 1, P, P + 1])
assert low_u == RFC7748_LOW_ORDER, low_u
for u in low_u:
    for top in (0, 1):
        enc = (u | (top << 255)).to_bytes(32, "little")
        for i in range(4):
            assert x25519(hashlib.sha256(f"x25519-scalar/{i}".encode()).digest(), enc) == bytes(32)
# RFC 7748 section 5.2, first test vector, checks the ladder itself.
assert x25519(bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
              bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")).hex() \
    == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
x25519_low_order = [{"u": str(u), "encoding": u.to_bytes(32, "little").hex(),
                     "encoding_top_bit_set": (u | 1 << 255).to_bytes(32, "little").hex()} for u in low_u]

print(json.dumps({
    "p": str(P),
    "l": str(L),
    "small_order_points": small_order,
    "small_order_encodings": small_order_encodings,
    "libsodium_blocklist": LIBSODIUM_BLOCKLIST,
    "forgeries": forgeries,
    "mixed_order": mixed_order,
    "not_on_curve": not_on_curve,
    "non_canonical_y": non_canonical_y,
    "rfc8032_test1": RFC8032_TEST1,
    "non_canonical_s": non_canonical_s,
    "small_order_r": small_order_r,
    "x25519_low_order": x25519_low_order,
}, indent=1))
