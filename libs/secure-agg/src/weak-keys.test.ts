import { createPrivateKey, createPublicKey, diffieHellman, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { toHex } from './bytes';
import { SecAggErrorCode } from './errors';
import { ed25519Sign, ed25519Verify, x25519FromSeed, x25519Shared } from './keys';
import { seededRandom } from './testing/simulate-round';
import {
  ed25519PublicKeyProblem,
  isCanonicalScalar,
  isSmallOrderEncoding,
  x25519PublicKeyProblem,
} from './weak-keys';

// Computed by test-vectors/generate_weak_keys.py with its own curve arithmetic; see the README there.
const V = JSON.parse(readFileSync(resolve(__dirname, '../test-vectors/ed25519-weak-keys.json'), 'utf8'));
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const L = BigInt(V.l);
const P = BigInt(V.p);

interface SignedVector {
  public_key: string;
  message: string;
  signature: string;
}

/** node:crypto's verification alone, as ed25519Verify did before the key and signature checks. */
function nodeVerify(v: SignedVector): boolean {
  const key = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), hex(v.public_key)]),
    format: 'der',
    type: 'spki',
  });
  return verify(null, hex(v.message), key, hex(v.signature));
}

const strictVerify = (v: SignedVector) => ed25519Verify(hex(v.public_key), hex(v.message), hex(v.signature));
const naclVerify = (v: SignedVector) =>
  nacl.sign.detached.verify(hex(v.message), hex(v.signature), hex(v.public_key));

const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const fromLe = (b: Uint8Array) => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);

describe('Ed25519 public-key check (vectors: test-vectors/ed25519-weak-keys.json)', () => {
  it('refuses each of the eight small-order points with its order', () => {
    expect(V.small_order_points).toHaveLength(8);
    for (const p of V.small_order_points) {
      expect(ed25519PublicKeyProblem(hex(p.encoding))).toBe(`small-order point (order ${p.order})`);
    }
  });

  it('refuses all 14 encodings of them: canonical, sign bit set with x = 0, y + p', () => {
    expect(V.small_order_encodings).toHaveLength(14);
    for (const e of V.small_order_encodings) {
      const problem = ed25519PublicKeyProblem(hex(e.encoding));
      expect(problem, e.encoding).toMatch(e.kind === 'canonical' ? /^small-order point/ : /^non-canonical/);
      expect(isSmallOrderEncoding(hex(e.encoding)), e.encoding).toBe(true);
    }
  });

  it('agrees with the libsodium blocklist, the oracle: every listed y with either sign is refused', () => {
    // The blocklist as published, masked sign bit: the generator checks it equals the derived set.
    const masked = new Set(
      V.small_order_encodings.map((e: { encoding: string }) => {
        const b = hex(e.encoding);
        b[31] &= 0x7f;
        return toHex(b);
      }),
    );
    expect([...masked].sort()).toEqual([...V.libsodium_blocklist].sort());
    for (const y of V.libsodium_blocklist) {
      for (const sign of [0, 0x80]) {
        const enc = hex(y);
        enc[31] |= sign;
        expect(ed25519PublicKeyProblem(enc), toHex(enc)).not.toBeNull();
        expect(isSmallOrderEncoding(enc), toHex(enc)).toBe(true);
      }
    }
    // And the first-principles check calls nothing small-order that the blocklist misses.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const problem = ed25519PublicKeyProblem(b);
        if (problem?.startsWith('small-order')) expect(isSmallOrderEncoding(b)).toBe(true);
        if (isSmallOrderEncoding(b)) expect(problem).not.toBeNull();
      }),
      { seed: 8032, numRuns: 200 },
    );
  });

  it('refuses mixed-order keys, non-points, non-canonical y and wrong lengths', () => {
    expect(V.mixed_order).toHaveLength(7);
    for (const m of V.mixed_order) {
      expect(ed25519PublicKeyProblem(hex(m.public_key))).toBe('mixed-order point (has a torsion component)');
    }
    for (const e of V.not_on_curve) expect(ed25519PublicKeyProblem(hex(e))).toBe('not a point on the curve');
    expect(V.non_canonical_y.length).toBeGreaterThan(0);
    for (const e of V.non_canonical_y) {
      expect(ed25519PublicKeyProblem(hex(e.encoding))).toBe('non-canonical encoding (y >= p)');
      // The same point, canonically encoded, is a valid point (not necessarily of prime order).
      expect(ed25519PublicKeyProblem(le(BigInt(e.y)))).not.toBe('not a point on the curve');
    }
    expect(ed25519PublicKeyProblem(new Uint8Array(31))).toBe('must be 32 bytes, got 31');
    expect(ed25519PublicKeyProblem(new Uint8Array(33))).toBe('must be 32 bytes, got 33');
    expect(ed25519PublicKeyProblem('ab' as unknown as Uint8Array)).toBe('must be a Uint8Array');
  });

  it('accepts the RFC 8032 test key 1 and its signature; ed25519Sign reproduces it', () => {
    const t = V.rfc8032_test1;
    expect(ed25519PublicKeyProblem(hex(t.public_key))).toBeNull();
    expect(strictVerify(t)).toBe(true);
    const secretKey = new Uint8Array([...hex(t.secret_key), ...hex(t.public_key)]);
    expect(toHex(ed25519Sign(secretKey, hex(t.message)))).toBe(t.signature);
  });

  it('accepts random valid keys, with a check of a few milliseconds at most', () => {
    const random = seededRandom('weak-keys/timing');
    const keys = Array.from({ length: 20 }, () => nacl.sign.keyPair.fromSeed(random(32)).publicKey);
    const start = performance.now();
    for (const k of keys) expect(ed25519PublicKeyProblem(k)).toBeNull();
    // About 1.5 ms per key here; the bound leaves room for slow CI machines.
    expect((performance.now() - start) / keys.length).toBeLessThan(25);
  });
});

const IDENTITY = '01'.padEnd(64, '0');
/** The trivial signature under the identity key: R = identity, S = 0, valid for any message. */
const TRIVIAL = {
  public_key: IDENTITY,
  message: toHex(Buffer.from('any message at all')),
  signature: IDENTITY.padEnd(128, '0'),
};
/**
 * Whether this Node's own verifier is the lax one (it accepts the trivial signature): Node 20 and
 * 22 do, Node 24 refuses small-order keys itself. Where it is lax, the tests also show it accepting
 * each forgery, which is why the strict check exists; the strict check is tested everywhere.
 */
const NODE_IS_LAX = nodeVerify(TRIVIAL);

describe('strict ed25519Verify', () => {
  it('refuses the trivial signature under the identity key, which node:crypto alone accepts (where lax)', () => {
    const trivial = TRIVIAL;
    expect(naclVerify(trivial)).toBe(true);
    expect(strictVerify(trivial)).toBe(false);
  });

  it('refuses the forgery under every small-order key encoding', () => {
    expect(V.forgeries).toHaveLength(14);
    for (const f of V.forgeries) {
      // R = [r]B, S = r: an ordinary R, so only the key check can stop these.
      expect(isSmallOrderEncoding(hex(f.signature).subarray(0, 32))).toBe(false);
      expect(naclVerify(f), f.public_key).toBe(true);
      // node:crypto (OpenSSL) accepts these; checked for the canonical ones, as decoders differ.
      if (NODE_IS_LAX && f.kind === 'canonical') expect(nodeVerify(f), f.public_key).toBe(true);
      expect(strictVerify(f), f.public_key).toBe(false);
    }
  });

  it('refuses signatures under mixed-order keys, which node:crypto alone accepts', () => {
    for (const m of V.mixed_order) {
      if (NODE_IS_LAX) expect(nodeVerify(m), m.public_key).toBe(true);
      expect(strictVerify(m), m.public_key).toBe(false);
    }
  });

  it('refuses a signature whose R is the identity, made by the holder of a valid key', () => {
    if (NODE_IS_LAX) expect(nodeVerify(V.small_order_r)).toBe(true);
    expect(strictVerify(V.small_order_r)).toBe(false);
    expect(ed25519PublicKeyProblem(hex(V.small_order_r.public_key))).toBeNull();
  });

  it('refuses S + L while the original signature verifies', () => {
    const t = V.rfc8032_test1;
    const mauled = V.non_canonical_s;
    expect(mauled.signature.slice(0, 64)).toBe(t.signature.slice(0, 64));
    expect(fromLe(hex(mauled.signature).subarray(32)) - fromLe(hex(t.signature).subarray(32))).toBe(L);
    // tweetnacl does not bound S, so S + L is a second valid signature there.
    expect(naclVerify(mauled)).toBe(true);
    expect(strictVerify(t)).toBe(true);
    expect(strictVerify(mauled)).toBe(false);
  });

  it('bounds S exactly at L', () => {
    expect(isCanonicalScalar(le(0n))).toBe(true);
    expect(isCanonicalScalar(le(L - 1n))).toBe(true);
    expect(isCanonicalScalar(le(L))).toBe(false);
    expect(isCanonicalScalar(le(L + 1n))).toBe(false);
    expect(isCanonicalScalar(le(2n ** 256n - 1n))).toBe(false);
  });

  it('returns false, never throws, on malformed input', () => {
    const t = V.rfc8032_test1;
    const [key, sig] = [hex(t.public_key), hex(t.signature)];
    expect(ed25519Verify(key.subarray(1), new Uint8Array(), sig)).toBe(false);
    expect(ed25519Verify(key, new Uint8Array(), sig.subarray(1))).toBe(false);
    expect(ed25519Verify(null as unknown as Uint8Array, new Uint8Array(), sig)).toBe(false);
    expect(ed25519Verify(key, 'text' as unknown as Uint8Array, sig)).toBe(false);
    expect(ed25519Verify(key, new Uint8Array(), [...sig] as unknown as Uint8Array)).toBe(false);
  });

  it('property: random key pairs pass the key check and verify; S made >= L in its top byte is refused', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.integer({ min: 0, max: 7 }),
        (seed, message, bit) => {
          const kp = nacl.sign.keyPair.fromSeed(seed);
          expect(ed25519PublicKeyProblem(kp.publicKey)).toBeNull();
          const sig = ed25519Sign(kp.secretKey, message);
          expect(ed25519Verify(kp.publicKey, message, sig)).toBe(true);
          const mauled = sig.slice();
          mauled[63] ^= 1 << bit;
          if (fromLe(mauled.subarray(32)) >= L) expect(isCanonicalScalar(mauled.subarray(32))).toBe(false);
          expect(ed25519Verify(kp.publicKey, message, mauled)).toBe(false);
          // S + L: the same scalar mod L, refused only by the bound.
          const plusL = sig.slice();
          plusL.set(le(fromLe(sig.subarray(32)) + L), 32);
          expect(ed25519Verify(kp.publicKey, message, plusL)).toBe(false);
        },
      ),
      { seed: 25519, numRuns: 100 },
    );
  });
});

describe('X25519 public-key check (vectors: test-vectors/ed25519-weak-keys.json)', () => {
  const x25519Spki = Buffer.from('302a300506032b656e032100', 'hex');
  const x25519Pkcs8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
  /** node:crypto's X25519, or null where OpenSSL refuses the (all-zero) result. */
  function nodeX25519(scalar: Uint8Array, u: Uint8Array): Uint8Array | null {
    try {
      return diffieHellman({
        privateKey: createPrivateKey({
          key: Buffer.concat([x25519Pkcs8, scalar]),
          format: 'der',
          type: 'pkcs8',
        }),
        publicKey: createPublicKey({ key: Buffer.concat([x25519Spki, u]), format: 'der', type: 'spki' }),
      });
    } catch {
      return null;
    }
  }

  it('refuses every listed low-order u, top bit clear or set; each gives an all-zero secret', () => {
    expect(V.x25519_low_order.map((x: { u: string }) => BigInt(x.u))).toEqual([
      0n,
      1n,
      325606250916557431795983626356110631294008115727848805560023387167927233504n,
      39382357235489614581723060781553021112529911719440698176882885853963445705823n,
      P - 1n,
      P,
      P + 1n,
    ]);
    const random = seededRandom('weak-keys/x25519-low');
    for (const x of V.x25519_low_order) {
      for (const enc of [x.encoding, x.encoding_top_bit_set]) {
        expect(x25519PublicKeyProblem(hex(enc)), enc).toMatch(/^low-order point/);
        for (let i = 0; i < 4; i++) {
          const scalar = random(32);
          expect(toHex(nacl.scalarMult(scalar, hex(enc))), enc).toBe('00'.repeat(32));
          const out = nodeX25519(scalar, hex(enc));
          if (out !== null) expect(toHex(out)).toBe('00'.repeat(32));
        }
        expect(() => x25519Shared(x25519FromSeed(random(32)), hex(enc))).toThrow(
          expect.objectContaining({ code: SecAggErrorCode.INVALID_ARGUMENT }),
        );
      }
    }
  });

  it('accepts the neighbours of the listed values and random keys, whose secret is not zero', () => {
    for (const x of V.x25519_low_order) {
      const u = BigInt(x.u);
      for (const n of [u - 1n, u + 1n]) {
        if (n < 0n || n >= 2n ** 255n || V.x25519_low_order.some((y: { u: string }) => BigInt(y.u) === n))
          continue;
        expect(x25519PublicKeyProblem(le(n)), n.toString()).toBeNull();
        expect(toHex(nacl.scalarMult(new Uint8Array(32).fill(9), le(n)))).not.toBe('00'.repeat(32));
      }
    }
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (seed, u) => {
          expect(x25519PublicKeyProblem(x25519FromSeed(seed).publicKey)).toBeNull();
          expect(x25519PublicKeyProblem(u)).toBeNull();
          expect(toHex(nacl.scalarMult(seed, u))).not.toBe('00'.repeat(32));
        },
      ),
      { seed: 7748, numRuns: 100 },
    );
    expect(x25519PublicKeyProblem(new Uint8Array(31))).toBe('must be 32 bytes, got 31');
  });
});
