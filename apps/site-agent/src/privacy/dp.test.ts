import { mulberry32 } from '@fedsynth/imaging';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addGaussianNoiseInPlace, clipL2InPlace, cryptoUniform, distributedNoiseStd, l2Norm } from './dp';

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

  it('gives the aggregate the full noise when every site adds its share', () => {
    const sites = 5;
    const std = distributedNoiseStd(1.2, 0.5, sites);
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
