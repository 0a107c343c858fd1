import { describe, expect, it } from 'vitest';
import { MR_STANDARD_SCALE, mrLandmarks, standardizeMr } from './mr-standardize';
import { normalizeFor, normalizeMr } from './normalize';
import { gaussian, mulberry32 } from './rng';

/** A body of `body` voxels (mask 1) followed by `outside` voxels (mask 0). */
const volume = (body: number[], outside: number[] = []) => ({
  data: Float32Array.from([...body, ...outside]),
  mask: Uint8Array.from([...body.map(() => 1), ...outside.map(() => 0)]),
});

/** A seeded MR-like volume: a background of zeros and a body of positive, skewed intensities. */
function mrLike(seed: number, n = 4000): { data: Float32Array; mask: Uint8Array } {
  const rnd = mulberry32(seed);
  const normal = gaussian(rnd);
  const data = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) continue; // background
    mask[i] = 1;
    data[i] = Math.exp(5 + 0.6 * normal());
  }
  return { data, mask };
}

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('MR landmark standardization', () => {
  it('maps a hand-computed volume through its landmarks', () => {
    // Body: 0, 1, 4, ..., 400 (i^2, i = 0..20), 21 voxels, so the value at quantile q sits at
    // position 20 q of the sorted body: p0.5 at 0.1 -> 0.1 (lo = min(0, 0.1) = 0), p10 at 2 -> 4,
    // p20 -> 16, ..., p90 at 18 -> 324, p99.5 at 19.9 -> 361 + 0.9 (400 - 361) = 396.1. The outputs
    // follow by hand, e.g. 10 lies halfway from 4 to 16: -0.8 + 0.2 (6 / 12) = -0.7; 390:
    // 0.8 + 0.2 (66 / 72.1). The same landmarks and outputs were checked once against numpy
    // (np.percentile, linear, and np.interp onto -1, -0.8, ..., 1).
    const body = Array.from({ length: 21 }, (_, i) => i * i);
    const outside = [-5, 2, 10, 120, 390, 1000];
    const { data, mask } = volume(body, outside);
    const { data: out, params } = standardizeMr(data, mask);
    const want = [0, 4, 16, 36, 64, 100, 144, 196, 256, 324, 396.1];
    for (const [k, l] of params.landmarks.entries()) expect(l).toBeCloseTo(want[k], 4);
    expect(params.lo).toBe(0);
    expect(params.hi).toBeCloseTo(396.1, 4);
    const at = (v: number) => out[[...body, ...outside].indexOf(v)];
    expect(at(0)).toBe(-1);
    expect(at(4)).toBeCloseTo(-0.8, 6);
    expect(at(16)).toBeCloseTo(-0.6, 6);
    expect(at(100)).toBeCloseTo(0, 6);
    expect(at(400)).toBe(1);
    expect(at(-5)).toBe(-1);
    expect(at(2)).toBeCloseTo(-0.9, 6);
    expect(at(10)).toBeCloseTo(-0.7, 6);
    expect(at(120)).toBeCloseTo(0.0909091, 6);
    expect(at(390)).toBeCloseTo(0.9830791, 6);
    expect(at(1000)).toBe(1);
    // The ends are normalizeMr's: the same lo and hi.
    expect(normalizeMr(data, mask).params).toEqual({ lo: params.lo, hi: params.hi });
  });

  it('is monotone non-decreasing and within [-1, 1], with and without ties', () => {
    const rnd = mulberry32(5);
    for (const levels of [0, 3, 12]) {
      // levels 0: continuous values; otherwise integers 0..levels-1, so landmarks coincide.
      const n = 3000;
      const data = Float32Array.from({ length: n }, () =>
        levels ? Math.floor(rnd() * levels) : 1000 * rnd() ** 3,
      );
      const mask = Uint8Array.from({ length: n }, () => (rnd() < 0.7 ? 1 : 0));
      const out = standardizeMr(data, mask).data;
      const order = Array.from(data.keys()).sort((a, b) => data[a] - data[b]);
      for (let k = 1; k < n; k++) expect(out[order[k]]).toBeGreaterThanOrEqual(out[order[k - 1]]);
      expect(out.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)).toBe(true);
    }
  });

  it('handles tied landmarks without dividing by zero: the middle of their positions', () => {
    // Body: five 0s, eleven 7s, five 9s (21 voxels, quantile q at position 20 q): p0.5 = p10 = p20
    // = 0, p30 ... p70 = 7 (positions 6 to 14), p80, p90, p99.5 = 9.
    const { data, mask } = volume([...Array(5).fill(0), ...Array(11).fill(7), ...Array(5).fill(9)], [3.5, 8]);
    const { data: out, params } = standardizeMr(data, mask);
    expect(params.landmarks).toEqual([0, 0, 0, 7, 7, 7, 7, 7, 9, 9, 9]);
    expect(out[0]).toBe(-1); // 0 = lo: background stays -1 although p10 and p20 are 0 too
    expect(out[5]).toBeCloseTo(0, 6); // 7 is landmarks 3..7: the middle of -0.4 and 0.4
    expect(out[16]).toBe(1); // 9 >= hi
    expect(out[21]).toBeCloseTo(-0.5, 6); // 3.5: halfway from 0 (landmark 2, -0.6) to 7 (-0.4)
    expect(out[22]).toBeCloseTo(0.5, 6); // 8: halfway from 7 (landmark 7, 0.4) to 9 (0.6)
  });

  it('maps constant volumes as normalizeMr does, and refuses an empty mask', () => {
    for (const [c, want] of [
      [5, 1],
      [0, -1],
      [-3, -1],
    ]) {
      const data = new Float32Array(50).fill(c);
      const out = standardizeMr(data).data;
      expect(Array.from(new Set(out))).toEqual([want]);
      expect(normalizeMr(data).data[0]).toBe(want);
    }
    // Below a positive constant body: linear from lo = 0 to the constant (landmarks 1..10).
    expect(Array.from(standardizeMr(Float32Array.of(5, 5, 5, 2.5), Uint8Array.of(1, 1, 1, 0)).data)).toEqual(
      [1, 1, 1, -0.9].map(Math.fround),
    );
    expect(() => standardizeMr(Float32Array.of(1, 2), Uint8Array.of(0, 0))).toThrow(/selects no voxel/);
  });

  it('is invariant under scaling, and under shifts only while p0.5 stays at or below 0', () => {
    const { data, mask } = mrLike(11);
    const base = standardizeMr(data, mask).data;
    for (const a of [0.013, 0.5, 3.7, 1000])
      expect(
        maxDiff(
          standardizeMr(
            Float32Array.from(data, (v) => a * v),
            mask,
          ).data,
          base,
        ),
      ).toBeLessThan(1e-5);
    // lo = min(0, p0.5) anchors the background at 0, so a shift of a positive volume moves every
    // landmark but the first: the map changes (by design: zero stays background).
    const shifted = standardizeMr(
      Float32Array.from(data, (v) => v + 100),
      mask,
    ).data;
    expect(maxDiff(shifted, base)).toBeGreaterThan(0.05);
    // With negative values in the body (p0.5 < 0 before and after), lo is p0.5 and moves along:
    // then a x + b changes nothing.
    const signed = Float32Array.from(data, (v, i) => (mask[i] ? v - 300 : v));
    expect(mrLandmarks(signed, mask).lo).toBeLessThan(0);
    const ref = standardizeMr(signed, mask).data;
    const moved = standardizeMr(
      Float32Array.from(signed, (v) => 2.5 * v - 40),
      mask,
    ).data;
    expect(maxDiff(moved, ref)).toBeLessThan(1e-5);
  });

  it('spreads the body evenly over the standard scale: a tenth of the voxels per band', () => {
    const { data, mask } = mrLike(3, 40_000);
    const out = standardizeMr(data, mask).data;
    const bands = new Array(MR_STANDARD_SCALE.length - 1).fill(0);
    let body = 0;
    for (let i = 0; i < out.length; i++) {
      if (!mask[i]) continue;
      body++;
      bands[Math.min(bands.length - 1, Math.floor((out[i] + 1) / 0.2))]++;
    }
    for (const b of bands) expect(Math.abs(b / body - 0.1)).toBeLessThan(0.006);
  });

  it('is what normalizeFor does for MR when the task asks for landmarks', () => {
    const { data, mask } = mrLike(4, 400);
    expect(normalizeFor('mr', data, { mask, mrScale: 'landmarks' })).toEqual(standardizeMr(data, mask).data);
    expect(normalizeFor('mr', data, { mask, mrScale: 'percentile' })).toEqual(normalizeMr(data, mask).data);
    expect(normalizeFor('mr', data, { mask })).toEqual(normalizeMr(data, mask).data);
  });
});
