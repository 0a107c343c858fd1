// Edwards25519 point arithmetic on BigInt (RFC 8032 section 5.1), used only to vet public keys:
// it runs once per key and is cached by the caller, so readability wins over speed. Signing and
// verification stay in node:crypto. Nothing here handles secrets, so nothing needs constant time.

/** The field prime p = 2^255 - 19. */
export const P = 2n ** 255n - 19n;
/** The order of the prime-order subgroup, L = 2^252 + 27742317777372353535851937790883648493. */
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const mod = (a: bigint): bigint => {
  const r = a % P;
  return r < 0n ? r + P : r;
};

function pow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

const D = mod(-121665n * pow(121666n, P - 2n));
const D2 = (2n * D) % P;
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

/** A point in extended homogeneous coordinates: x = X/Z, y = Y/Z, x*y = T/Z. */
export interface ExtendedPoint {
  X: bigint;
  Y: bigint;
  Z: bigint;
  T: bigint;
}

/** The neutral element (0, 1). */
export const IDENTITY: ExtendedPoint = { X: 0n, Y: 1n, Z: 1n, T: 0n };

/** Point addition (RFC 8032 section 5.1.4; complete on this curve since d is not a square). */
export function pointAdd(p: ExtendedPoint, q: ExtendedPoint): ExtendedPoint {
  const a = ((p.Y - p.X) * (q.Y - q.X)) % P;
  const b = ((p.Y + p.X) * (q.Y + q.X)) % P;
  const c = (((p.T * D2) % P) * q.T) % P;
  const d = (2n * p.Z * q.Z) % P;
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { X: (e * f) % P, Y: (g * h) % P, Z: (f * g) % P, T: (e * h) % P };
}

/** Point doubling (RFC 8032 section 5.1.4). */
export function pointDouble(p: ExtendedPoint): ExtendedPoint {
  const a = (p.X * p.X) % P;
  const b = (p.Y * p.Y) % P;
  const c = (2n * p.Z * p.Z) % P;
  const h = a + b;
  const xy = p.X + p.Y;
  const e = h - ((xy * xy) % P);
  const g = a - b;
  const f = c + g;
  return { X: (e * f) % P, Y: (g * h) % P, Z: (f * g) % P, T: (e * h) % P };
}

/** [k]p by double-and-add, most significant bit first; k >= 0. */
export function pointMultiply(p: ExtendedPoint, k: bigint): ExtendedPoint {
  let acc = IDENTITY;
  for (let i = BigInt(k.toString(2).length) - 1n; i >= 0n; i--) {
    acc = pointDouble(acc);
    if ((k >> i) & 1n) acc = pointAdd(acc, p);
  }
  return acc;
}

/** Whether p is the neutral element: X = 0 and Y = Z (mod p). */
export function isIdentity(p: ExtendedPoint): boolean {
  return mod(p.X) === 0n && mod(p.Y - p.Z) === 0n;
}

/** Little-endian unsigned integer of the bytes. */
export function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/** Why a 32-byte string fails RFC 8032 point decoding (section 5.1.3), or the point it decodes to. */
export type DecodeResult =
  | { point: ExtendedPoint; problem?: undefined }
  | { point?: undefined; problem: 'y >= p' | 'not on curve' | 'x = 0 with sign bit' };

/**
 * Decodes a point as RFC 8032 section 5.1.3 does, strictly: y must be below p, and x = 0 must come
 * with a clear sign bit. `bytes` must hold 32 bytes.
 */
export function decodePoint(bytes: Uint8Array): DecodeResult {
  const n = bytesToNumberLE(bytes);
  const sign = n >> 255n;
  const y = n & ((1n << 255n) - 1n);
  if (y >= P) return { problem: 'y >= p' };
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  // x = (u/v)^((p+3)/8) computed as u v^3 (u v^7)^((p-5)/8), as the RFC does.
  const v3 = (v * v * v) % P;
  let x = (((u * v3) % P) * pow((u * ((v3 * v3 * v) % P)) % P, (P - 5n) / 8n)) % P;
  const vx2 = (v * x * x) % P;
  if (vx2 === u) {
    // x is a square root of u/v
  } else if (vx2 === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else {
    return { problem: 'not on curve' };
  }
  if (x === 0n && sign === 1n) return { problem: 'x = 0 with sign bit' };
  if ((x & 1n) !== sign) x = P - x;
  return { point: { X: x, Y: y, Z: 1n, T: (x * y) % P } };
}
