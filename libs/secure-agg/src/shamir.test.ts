import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from './bytes';
import { combineShares, splitSecret } from './shamir';
import { seededRandom } from './testing/simulate-round';

describe('Shamir sharing over GF(2^521 - 1)', () => {
  it('reconstructs from any t shares, in any order, and not from t - 1', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 0, max: 8 }),
        fc.integer(),
        (secret, t, extra, seed) => {
          const n = t + extra;
          const xs = Array.from({ length: n }, (_, i) => 1 + i * 3);
          const shares = splitSecret(secret, t, xs, seededRandom(`sh${seed}`));
          const pick = seededRandom(`pick${seed}`)(n);
          const shuffled = shares
            .map((s, i) => ({ s, k: pick[i] }))
            .sort((a, b) => a.k - b.k)
            .map((e) => e.s);
          expect(toHex(combineShares(shuffled, t))).toBe(toHex(secret));
          // t - 1 shares interpolate to a different value (or no 32-byte value at all).
          let other: string | null = null;
          try {
            other = toHex(combineShares(shuffled.slice(0, t - 1), t - 1));
          } catch {
            other = null;
          }
          expect(other).not.toBe(toHex(secret));
        },
      ),
      { seed: 11, numRuns: 150 },
    );
  });

  it('refuses bad thresholds, duplicate x-coordinates and secrets of the wrong size', () => {
    const r = seededRandom('x');
    expect(() => splitSecret(new Uint8Array(31), 2, [1, 2], r)).toThrow(/32 bytes/);
    expect(() => splitSecret(new Uint8Array(32), 3, [1, 2], r)).toThrow(/threshold 3/);
    expect(() => splitSecret(new Uint8Array(32), 2, [1, 1], r)).toThrow(/distinct/);
    const shares = splitSecret(new Uint8Array(32).fill(1), 2, [1, 2, 3], r);
    expect(() => combineShares([shares[0], shares[0]], 2)).toThrow(/duplicate/);
  });
});
