import { mulberry32 } from '@fedsynth/imaging';
import { RdpAccountant, siteNoiseStd } from '@fedsynth/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addGaussianNoiseInPlace, clipL2InPlace, cryptoUniform, l2Norm, privatizeUpdate } from './dp';

describe('clipL2InPlace', () => {
  it('bounds the norm by the clip and keeps the direction', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 64 }),
        fc.double({ min: 1e-3, max: 50, noNaN: true }),
        (values, clip) => {
          const v = Float32Array.from(values);
          const before = Float32Array.from(v);
          const { norm, factor } = clipL2InPlace(v, clip);
          expect(norm).toBeCloseTo(l2Norm(before), 3);
          expect(l2Norm(v)).toBeLessThanOrEqual(clip * (1 + 1e-5) + 1e-6);
          for (let i = 0; i < v.length; i++) expect(v[i]).toBeCloseTo(before[i] * factor, 4);
          if (norm <= clip) expect(factor).toBe(1);
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it('refuses NaN updates and a non-positive clip', () => {
    expect(() => clipL2InPlace(Float32Array.of(1, Number.NaN), 1)).toThrow(/NaN/);
    expect(() => clipL2InPlace(Float32Array.of(1), 0)).toThrow(/clip norm/);
  });
});

describe('addGaussianNoiseInPlace', () => {
  it('adds zero-mean noise with the requested standard deviation', () => {
    const v = new Float32Array(200_001);
    addGaussianNoiseInPlace(v, 2.5, mulberry32(11));
    let mean = 0;
    for (const x of v) mean += x;
    mean /= v.length;
    let variance = 0;
    for (const x of v) variance += (x - mean) ** 2;
    variance /= v.length - 1;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.sqrt(variance)).toBeGreaterThan(2.5 * 0.99);
    expect(Math.sqrt(variance)).toBeLessThan(2.5 * 1.01);
  });

  it('gives the aggregate the full noise when as many sites as the threshold add their share', () => {
    const sites = 5;
    const std = siteNoiseStd(1.2, 0.5, sites);
    const sum = new Float64Array(50_000);
    const u = cryptoUniform();
    for (let s = 0; s < sites; s++) {
      const v = new Float32Array(sum.length);
      addGaussianNoiseInPlace(v, std, u);
      for (let i = 0; i < v.length; i++) sum[i] += v[i];
    }
    let variance = 0;
    for (const x of sum) variance += x * x;
    const total = Math.sqrt(variance / sum.length);
    expect(total).toBeGreaterThan(0.6 * 0.98);
    expect(total).toBeLessThan(0.6 * 1.02);
  });

  it('draws uniform values in [0, 1) from the crypto source', () => {
    const u = cryptoUniform();
    for (let i = 0; i < 10_000; i++) {
      const x = u();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});

describe('privatizeUpdate (one DP-FedAvg round at a site)', () => {
  it('without noise only clips, and reports no epsilon', () => {
    const v = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const acc = new RdpAccountant();
    const r = privatizeUpdate(v, { clip: 2, noiseMultiplier: 0, delta: 1e-5 }, 3, acc);
    expect(r.epsilon).toBeNull();
    expect(r.noiseStd).toBe(0);
    expect(l2Norm(v)).toBeCloseTo(2, 4);
    expect(acc.rounds).toBe(0);
  });

  it("adds this site's share of the noise and accounts each round like an independent accountant", () => {
    const n = 200_000;
    const acc = new RdpAccountant();
    const oracle = new RdpAccountant();
    const dp = { clip: 1, noiseMultiplier: 1.1, delta: 1e-5 };
    let last = 0;
    for (let round = 1; round <= 3; round++) {
      const v = new Float32Array(n); // a zero update: what remains is exactly the noise
      const r = privatizeUpdate(v, dp, 4, acc, mulberry32(round));
      oracle.record(1.1, 1, 1);
      // Threshold 4: each site adds N(0, (z C)^2 / 4), so any 4 or more survivors carry N(0, (z C)^2) at least.
      expect(r.noiseStd).toBeCloseTo((1.1 * 1) / 2, 12);
      let s2 = 0;
      for (const x of v) s2 += x * x;
      expect(Math.sqrt(s2 / n)).toBeCloseTo(r.noiseStd, 2);
      expect(r.epsilon).toBeCloseTo(oracle.epsilon(1e-5), 12);
      expect(r.epsilon!).toBeGreaterThan(last);
      last = r.epsilon!;
    }
    expect(acc.rounds).toBe(3);
  });
});
