import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from './bytes';
import { deriveKey, hkdfSha256, KDF_LABELS } from './kdf';
import { prgExpand } from './prg';
import { combineShares, splitSecret } from './shamir';

const V = JSON.parse(readFileSync(resolve(__dirname, '../test-vectors/vectors.json'), 'utf8'));
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

describe('test vectors (see test-vectors/README.md for provenance)', () => {
  it('HKDF-SHA256 matches RFC 5869 test case 1', () => {
    const v = V.hkdf_rfc5869_a1;
    expect(toHex(hkdfSha256(hex(v.ikm), hex(v.salt), hex(v.info), v.length))).toBe(v.okm);
  });

  it('derives the per-purpose keys of an independent HKDF', () => {
    const byLabel = Object.fromEntries(Object.entries(KDF_LABELS).map(([k, l]) => [l.split('/').pop(), k]));
    for (const v of V.derive_key) {
      const purpose = byLabel[v.label] as keyof typeof KDF_LABELS;
      expect(purpose).toBeDefined();
      expect(toHex(deriveKey(hex(v.secret), hex(v.session), purpose))).toBe(v.key);
    }
  });

  it('PRG output equals the openssl AES-256-CTR keystream', () => {
    for (const v of V.prg_aes256ctr) {
      expect([...prgExpand(hex(v.key), v.u32le.length)]).toEqual(v.u32le);
    }
  });

  it('Shamir shares equal independent polynomial evaluation, and any t of them reconstruct', () => {
    for (const v of V.shamir_m521) {
      const coeffs: Uint8Array[] = v.coefficients.map(hex);
      let k = 0;
      const random = (n: number) => {
        expect(n).toBe(66);
        return coeffs[k++].slice();
      };
      const xs = v.shares.map((s: { x: number }) => s.x);
      const shares = splitSecret(hex(v.secret), v.threshold, xs, random);
      expect(shares.map((s) => ({ x: s.x, y: toHex(s.y) }))).toEqual(v.shares);
      const reversed = [...shares].reverse();
      expect(toHex(combineShares(reversed, v.threshold))).toBe(v.secret);
      expect(() => combineShares(shares.slice(0, v.threshold - 1), v.threshold)).toThrow(/need/);
    }
  });
});
