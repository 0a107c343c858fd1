import { describe, expect, it } from 'vitest';
import { describeNonFinite, nonFiniteCount, valueStats } from './value-stats';

describe('valueStats', () => {
  it('counts each kind of non-finite value and keeps the range of the finite ones', () => {
    const s = valueStats(Float32Array.of(3, Number.NaN, -Infinity, -7, Infinity, Number.NaN, 0, -Infinity));
    expect(s).toEqual({ min: -7, max: 3, nan: 2, posInf: 1, negInf: 2 });
    expect(nonFiniteCount(s)).toBe(5);
    expect(describeNonFinite(s)).toBe('5 non-finite voxels (2 NaN, 1 +Infinity, 2 -Infinity)');
  });

  it('says nothing about finite data, and has an empty range when nothing is finite', () => {
    expect(describeNonFinite(valueStats(Float32Array.of(-1024, 3000)))).toBe('');
    expect(valueStats(Float32Array.of(Number.NaN))).toEqual({
      min: Infinity,
      max: -Infinity,
      nan: 1,
      posInf: 0,
      negInf: 0,
    });
  });
});
