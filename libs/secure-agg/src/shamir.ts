import { ensure, SecAggError, SecAggErrorCode } from './errors';

/**
 * Shamir secret sharing of 32-byte secrets over GF(p) with p = 2^521 - 1 (a Mersenne prime), so
 * that any 256-bit secret is one field element and no secret is ever truncated or split.
 * Share x-coordinates are participant indices (1..n); a share's y is 66 big-endian bytes.
 */
export const FIELD_PRIME = (1n << 521n) - 1n;
export const SHARE_VALUE_BYTES = 66;

export interface Share {
  x: number;
  y: Uint8Array; // SHARE_VALUE_BYTES
}

function mod(a: bigint): bigint {
  const r = a % FIELD_PRIME;
  return r < 0n ? r + FIELD_PRIME : r;
}

function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return v;
}

function bigToBytes(v: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = v;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function invert(a: bigint): bigint {
  // Extended Euclid; a is non-zero mod p.
  let [r0, r1] = [mod(a), FIELD_PRIME];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n)
    throw new SecAggError(SecAggErrorCode.RECONSTRUCTION_FAILED, 'share x-coordinates are not distinct');
  return mod(s0);
}

/** A uniform field element from a source of random bytes (rejection sampling). */
function randomElement(random: (n: number) => Uint8Array): bigint {
  for (;;) {
    const b = random(SHARE_VALUE_BYTES);
    b[0] &= 0x01; // 521 bits
    const v = bytesToBig(b);
    if (v < FIELD_PRIME) return v;
  }
}

/**
 * Splits a 32-byte secret into shares for the given x-coordinates, any `threshold` of which
 * reconstruct it and fewer reveal nothing.
 * @param random source of uniform random bytes (injectable for seeded tests)
 */
export function splitSecret(
  secret: Uint8Array,
  threshold: number,
  xs: readonly number[],
  random: (n: number) => Uint8Array,
): Share[] {
  ensure(
    secret instanceof Uint8Array && secret.length === 32,
    SecAggErrorCode.BAD_LENGTH,
    'secret must be 32 bytes',
  );
  ensure(
    Number.isInteger(threshold) && threshold >= 1 && threshold <= xs.length,
    SecAggErrorCode.INVALID_ARGUMENT,
    () => `threshold ${threshold} must be in [1, ${xs.length}]`,
  );
  ensure(new Set(xs).size === xs.length, SecAggErrorCode.DUPLICATE, 'share x-coordinates must be distinct');
  for (const x of xs) {
    ensure(
      Number.isInteger(x) && x >= 1 && x < 2 ** 31,
      SecAggErrorCode.INVALID_ARGUMENT,
      `bad x-coordinate ${x}`,
    );
  }
  const coeffs = [bytesToBig(secret)];
  for (let i = 1; i < threshold; i++) coeffs.push(randomElement(random));
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) y = mod(y * bx + coeffs[i]);
    return { x, y: bigToBytes(y, SHARE_VALUE_BYTES) };
  });
}

/**
 * Reconstructs the secret from at least `threshold` shares by Lagrange interpolation at 0 (only the
 * first `threshold` are used). Throws when fewer shares are given or the result is not a 32-byte value.
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  ensure(
    shares.length >= threshold,
    SecAggErrorCode.BELOW_THRESHOLD,
    () => `need ${threshold} shares to reconstruct, got ${shares.length}`,
  );
  const used = shares.slice(0, threshold);
  ensure(
    new Set(used.map((s) => s.x)).size === used.length,
    SecAggErrorCode.DUPLICATE,
    'duplicate share x-coordinates',
  );
  let acc = 0n;
  for (let i = 0; i < used.length; i++) {
    ensure(
      used[i].y.length === SHARE_VALUE_BYTES,
      SecAggErrorCode.BAD_LENGTH,
      `share y must be ${SHARE_VALUE_BYTES} bytes`,
    );
    const xi = BigInt(used[i].x);
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < used.length; j++) {
      if (j === i) continue;
      const xj = BigInt(used[j].x);
      num = mod(num * -xj);
      den = mod(den * (xi - xj));
    }
    acc = mod(acc + bytesToBig(used[i].y) * num * invert(den));
  }
  ensure(
    acc < 1n << 256n,
    SecAggErrorCode.RECONSTRUCTION_FAILED,
    'reconstructed value is not a 32-byte secret (bad shares)',
  );
  return bigToBytes(acc, 32);
}
