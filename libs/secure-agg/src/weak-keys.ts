import {
  bytesToNumberLE,
  decodePoint,
  type ExtendedPoint,
  isIdentity,
  L,
  P,
  pointDouble,
  pointMultiply,
} from './edwards25519';
import { ensure, SecAggErrorCode } from './errors';

/**
 * Says why an Ed25519 public key must be refused, or returns null when it is a canonical encoding of
 * a point of prime order L. Refused: anything but 32 bytes; non-canonical encodings (y >= p, or x = 0
 * with the sign bit set); encodings of no curve point; the eight small-order points; and
 * mixed-order points (a prime-order point plus a torsion component). Weak keys let a signature
 * verify for more than one message or key, e.g. the identity point with R = identity, S = 0
 * verifies for every message.
 *
 * The check decodes the point (RFC 8032 section 5.1.3) and computes [8]A and [L]A with BigInt
 * arithmetic: 1-2 ms, so callers that see the same key often should cache the answer.
 *
 * @param key the 32-byte encoded public key
 * @returns a short reason, or null when the key is acceptable
 * @example ed25519PublicKeyProblem(new Uint8Array(32).fill(0)) // 'small-order point (order 4)'
 */
export function ed25519PublicKeyProblem(key: Uint8Array): string | null {
  if (!(key instanceof Uint8Array)) return 'must be a Uint8Array';
  if (key.length !== 32) return `must be 32 bytes, got ${key.length}`;
  const decoded = decodePoint(key);
  if (decoded.problem === 'y >= p') return 'non-canonical encoding (y >= p)';
  if (decoded.problem === 'x = 0 with sign bit')
    return 'non-canonical encoding (x = 0 with the sign bit set)';
  if (decoded.problem) return 'not a point on the curve';
  const order = smallOrder(decoded.point);
  if (order !== null) return `small-order point (order ${order})`;
  if (!isIdentity(pointMultiply(decoded.point, L))) return 'mixed-order point (has a torsion component)';
  return null;
}

/** The order of the point when it divides 8, else null. */
function smallOrder(point: ExtendedPoint): number | null {
  let q = point;
  for (const k of [1, 2, 4, 8]) {
    if (isIdentity(q)) return k;
    q = pointDouble(q);
  }
  return null;
}

// y-coordinates (little-endian, sign bit masked) of every encoding of a small-order point: y = 0,
// 1, the two order-8 values, p - 1, and the non-canonical p and p + 1. libsodium compares R against
// this same list; test-vectors/ed25519-weak-keys.json derives it from the curve.
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => new Uint8Array(Buffer.from(h, 'hex')));

/**
 * Whether 32 bytes encode a small-order point in any encoding (canonical, either sign bit,
 * non-canonical y >= p). A table lookup, cheap enough for the R half of every signature.
 *
 * @param encoded a 32-byte point encoding
 */
export function isSmallOrderEncoding(encoded: Uint8Array): boolean {
  return SMALL_ORDER_Y.some((y) => {
    for (let i = 0; i < 31; i++) if (encoded[i] !== y[i]) return false;
    return (encoded[31] & 0x7f) === y[31];
  });
}

// L, little-endian, for the S < L comparison.
const L_BYTES = Uint8Array.from({ length: 32 }, (_, i) => Number((L >> BigInt(8 * i)) & 0xffn));

/**
 * Whether a 32-byte little-endian scalar is below L, as RFC 8032 section 5.1.7 requires of S; an
 * S + L would make a second valid signature for the same message.
 *
 * @param s the last 32 bytes of a signature
 */
export function isCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (s[i] !== L_BYTES[i]) return s[i] < L_BYTES[i];
  }
  return false;
}

// u-coordinates whose X25519 output is all-zero for every private key (RFC 7748 section 6.1): the
// points of order 2, 4 and 8 on the curve and of order 4 on its twist, and the non-canonical
// u + p that still fit in 255 bits.
const X25519_LOW_ORDER_U = new Map<bigint, string>([
  [0n, 'u = 0, order 2'],
  [1n, 'u = 1, order 4'],
  [325606250916557431795983626356110631294008115727848805560023387167927233504n, 'order 8'],
  [39382357235489614581723060781553021112529911719440698176882885853963445705823n, 'order 8'],
  [P - 1n, 'u = -1, order 4 on the twist'],
  [P, 'u = p, a non-canonical 0'],
  [P + 1n, 'u = p + 1, a non-canonical 1'],
]);

/**
 * Says why an X25519 public key must be refused, or returns null. Refused: anything but 32 bytes,
 * and the low-order u-coordinates (top bit ignored, as RFC 7748 section 5 says), whose shared
 * secret is all-zero whatever the private key, so a peer could fix the key both sides derive.
 *
 * @param key the 32-byte u-coordinate, little-endian
 * @returns a short reason, or null when the key is acceptable
 * @example x25519PublicKeyProblem(new Uint8Array(32)) // 'low-order point (u = 0, order 2)'
 */
export function x25519PublicKeyProblem(key: Uint8Array): string | null {
  if (!(key instanceof Uint8Array)) return 'must be a Uint8Array';
  if (key.length !== 32) return `must be 32 bytes, got ${key.length}`;
  const u = bytesToNumberLE(key) & ((1n << 255n) - 1n);
  const low = X25519_LOW_ORDER_U.get(u);
  return low === undefined ? null : `low-order point (${low})`;
}

/**
 * Refuses an advert's X25519 keys that have a problem, naming the participant and the key.
 *
 * @throws SecAggError INVALID_ARGUMENT
 */
export function ensureAdvertKeys(sender: number, encryptionKey: Uint8Array, maskingKey: Uint8Array): void {
  for (const [name, key] of [
    ['encryptionKey', encryptionKey],
    ['maskingKey', maskingKey],
  ] as const) {
    const problem = x25519PublicKeyProblem(key);
    ensure(
      problem === null,
      SecAggErrorCode.INVALID_ARGUMENT,
      () => `advert of participant ${sender} has an unusable ${name}: ${problem}`,
    );
  }
}
