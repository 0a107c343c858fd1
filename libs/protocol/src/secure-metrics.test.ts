import { makeConfig, makeSites, simulateRound } from '@fedsynth/secure-agg/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFigures,
  encodeFigures,
  layoutProblem,
  type MetricSlot,
  type SiteFigures,
  secureMetricsLayout,
} from './secure-metrics';

/**
 * Figures inside the masked vector: the encoding by hand, its clamping and NaN handling, the
 * decoding of weighted means (property tests against the weighted mean of the figures computed
 * here), and whole rounds through libs/secure-agg's real clients, server and quantization.
 */
const CT = secureMetricsLayout('ct');
const slot = (name: string) => CT.find((s) => s.name === name)!;

/** The weighted mean of each named figure over the sites that have it, computed directly. */
function weightedMean(sites: { figures: SiteFigures; weight: number }[], name: keyof SiteFigures): number {
  const have = sites.filter((s) => s.figures[name] !== undefined);
  const w = have.reduce((a, s) => a + s.weight, 0);
  return have.reduce((a, s) => a + s.weight * s.figures[name]!, 0) / w;
}

const figuresArb = fc.record({
  train_loss: fc.double({ min: 0, max: 10, noNaN: true }),
  mae: fc.double({ min: 0, max: 4024, noNaN: true }),
  psnr: fc.double({ min: 0, max: 100, noNaN: true }),
  ssim: fc.double({ min: -1, max: 1, noNaN: true }),
  nearest_synth: fc.double({ min: 0, max: 2, noNaN: true }),
  nearest_real: fc.double({ min: 0, max: 2, noNaN: true }),
});

describe('the metric layout', () => {
  it('names every figure with the ranges of the task target', () => {
    expect(CT.map((s) => s.name)).toEqual([
      'train_loss',
      'evaluated',
      'mae',
      'psnr',
      'ssim',
      'nearest_checked',
      'nearest_synth',
      'nearest_real',
    ]);
    expect(slot('mae')).toEqual({ name: 'mae', lo: 0, hi: 4024 });
    expect(secureMetricsLayout('mr').find((s) => s.name === 'mae')).toEqual({ name: 'mae', lo: 0, hi: 1 });
    expect(layoutProblem(CT, 100)).toBeNull();
  });

  it('refuses a layout a site cannot fill, saying why', () => {
    const with_ = (patch: MetricSlot[]) => layoutProblem(patch, 100);
    expect(with_([{ name: 'fid', lo: 0, hi: 1 }])).toMatch(/unknown figure "fid".*upgrade the agent/);
    expect(with_([slot('train_loss'), slot('train_loss')])).toMatch(/"train_loss" is listed twice/);
    expect(with_([{ name: 'train_loss', lo: 5, hi: 5 }])).toMatch(/not a finite interval/);
    expect(with_([{ name: 'train_loss', lo: 0, hi: Number.NaN }])).toMatch(/not a finite interval/);
    expect(with_([slot('mae')])).toMatch(/"mae" needs its presence flag "evaluated"/);
    expect(with_([{ name: 'evaluated', lo: 0.5, hi: 1 }])).toMatch(/must hold 0 and 1/);
    expect(with_([slot('evaluated'), { name: 'mae', lo: 10, hi: 20 }])).toMatch(/must hold 0/);
    expect(layoutProblem(CT, CT.length)).toMatch(/no room for the model/);
  });
});

describe('encodeFigures', () => {
  it('maps each figure linearly onto [-clip, clip] (hand-computed)', () => {
    const x = encodeFigures(
      CT,
      { train_loss: 2.5, mae: 1006, psnr: 75, ssim: 0, nearest_synth: 0.5, nearest_real: 2 },
      0.2,
    );
    // v -> -c + 2c (v - lo) / (hi - lo): a quarter of the range is -0.1, the middle 0, the top c.
    expect(Array.from(x)).toEqual([-0.1, 0.2, -0.1, 0.1, 0, 0.2, -0.1, 0.2].map((v) => Math.fround(v)));
  });

  it('clamps a figure outside its range and says which', () => {
    const warnings: unknown[] = [];
    const x = encodeFigures(
      CT,
      { train_loss: 12, mae: -3, psnr: Number.POSITIVE_INFINITY, ssim: 0.5 },
      0.5,
      (message, fields) => warnings.push({ message, ...fields }),
    );
    expect(x[0]).toBe(0.5); // loss 12 > 10
    expect(x[2]).toBe(-0.5); // MAE -3 < 0
    expect(x[3]).toBe(0.5); // PSNR of a perfect synthesis: the top of the range
    expect(warnings).toEqual([
      expect.objectContaining({ figure: 'train_loss', value: 12, hi: 10 }),
      expect.objectContaining({ figure: 'mae', value: -3, lo: 0 }),
      expect.objectContaining({ figure: 'psnr', value: Number.POSITIVE_INFINITY }),
    ]);
  });

  it('a NaN figure leaves its group out of the sum, with a warning; the rest is sent', () => {
    const warnings: string[] = [];
    const x = encodeFigures(
      CT,
      { train_loss: 1, mae: Number.NaN, psnr: 30, ssim: 0.9, nearest_synth: 0.3, nearest_real: 0.4 },
      1,
      (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`),
    );
    for (const v of x) expect(Number.isFinite(v)).toBe(true);
    // evaluated = 0 (encoded -1), and the group's slots carry 0: MAE/PSNR at -1, SSIM's 0 in the middle.
    expect(Array.from(x.subarray(1, 5))).toEqual([-1, -1, -1, 0]);
    expect(x[5]).toBe(1); // the memorization check is its own group: still present
    expect(warnings).toEqual([expect.stringMatching(/NaN.*"evaluated".*left out.*"mae"/)]);
  });

  it('refuses a missing or NaN figure that has no group to leave it out of', () => {
    expect(() => encodeFigures(CT, { train_loss: Number.NaN }, 1)).toThrow(
      /figure "train_loss" is NaN: it has no presence flag/,
    );
    expect(() => encodeFigures(CT, {}, 1)).toThrow(/figure "train_loss" is undefined/);
    expect(() => encodeFigures([{ name: 'fid', lo: 0, hi: 1 }], {}, 1)).toThrow(/unknown figure "fid"/);
  });

  it('a site without validation slices sends its group as absent, silently', () => {
    const warnings: string[] = [];
    const x = encodeFigures(CT, { train_loss: 1 }, 1, (m) => warnings.push(m));
    expect(x[1]).toBe(-1);
    expect(x[5]).toBe(-1);
    expect(warnings).toEqual([]);
  });
});

describe('decodeFigures of weighted means', () => {
  const sitesArb = fc.array(
    fc.record({
      figures: figuresArb,
      weight: fc.double({ min: 0.1, max: 1, noNaN: true }),
      evaluated: fc.boolean(),
    }),
    { minLength: 1, maxLength: 8 },
  );

  it('gives the weighted mean of the figures over the sites that measured them (property)', () => {
    fc.assert(
      fc.property(sitesArb, fc.double({ min: 0.01, max: 10, noNaN: true }), (raw, clip) => {
        const sites = raw.map((s) => ({
          weight: s.weight,
          figures: s.evaluated
            ? s.figures
            : { train_loss: s.figures.train_loss, nearest_synth: 0.1, nearest_real: 0.2 },
        }));
        // The exact weighted mean of the encodings, as secure aggregation would return it.
        const enc = sites.map((s) => encodeFigures(CT, s.figures, clip));
        const total = sites.reduce((a, s) => a + s.weight, 0);
        const means = CT.map((_, j) => sites.reduce((a, s, k) => a + s.weight * enc[k][j], 0) / total);
        const out = decodeFigures(CT, means, clip, 0);
        for (const s of CT) {
          const name = s.name as keyof SiteFigures;
          if (name === ('evaluated' as string) || name === ('nearest_checked' as string)) continue;
          const anyHas = sites.some((x) => x.figures[name] !== undefined);
          if (!anyHas) {
            expect(out.has(name)).toBe(false);
            continue;
          }
          // float32 slots: each figure and the share it is divided by are rounded by 2^-24 of
          // their range at most, the quotient then off by up to (range + |figure|) 2^-24 / share.
          const has = sites.filter((x) => x.figures[name] !== undefined);
          const share = has.reduce((a, x) => a + x.weight, 0) / total;
          const tol = (4 * 2 ** -24 * Math.max(s.hi - s.lo, Math.abs(s.lo), Math.abs(s.hi))) / share;
          expect(Math.abs(out.get(name)!.value - weightedMean(sites, name))).toBeLessThanOrEqual(tol);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('maps the bound of a mean back to each figure, and widens it for a group by its share', () => {
    // A third of the weight evaluated: share 1/3, each mean off by at most e = 0.001 (clip 1).
    const clip = 1;
    const e = 0.001;
    const means = encodeFigures(CT, { train_loss: 1, mae: 300, psnr: 30, ssim: 0.5 }, clip);
    // Mix with two sites that did not evaluate (weights equal): only the group slots change.
    const absent = encodeFigures(CT, { train_loss: 1 }, clip);
    const mixed = Array.from(means, (v, j) => (v + 2 * absent[j]) / 3);
    const out = decodeFigures(CT, mixed, clip, e);
    expect(out.get('evaluated')!.value).toBeCloseTo(1 / 3, 6);
    expect(out.get('mae')!.value).toBeCloseTo(300, 3);
    // Plain figure: e (hi - lo) / (2c), e with float32 rounding (c 2^-23) added. Group figure:
    // (e_v + max(|lo|,|hi|) e_p) / share.
    const ef = e + clip * 2 ** -23;
    expect(out.get('train_loss')!.bound).toBeCloseTo((ef * 10) / 2, 12);
    const eMae = (ef * 4024) / 2;
    const eP = ef / 2;
    expect(out.get('mae')!.bound).toBeCloseTo((eMae + 4024 * eP) / (1 / 3), 6);
    expect(out.has('nearest_synth')).toBe(false); // nobody ran the memorization check
  });
});

describe('figures through a real secure-aggregation round', () => {
  const N = 300; // model values before the figure slots

  function round(opts: {
    figures: SiteFigures[];
    weights: number[];
    levels: number;
    maxWeight: number;
    clip: number;
    drop?: number;
    seed: string;
  }) {
    const sites = makeSites(opts.figures.length, opts.seed);
    const config = makeConfig(sites, {
      threshold: Math.floor(opts.figures.length / 2) + 1,
      vectorLength: N + CT.length,
      quantization: { clip: opts.clip, levels: opts.levels, maxWeight: opts.maxWeight },
    });
    const inputs = new Map<number, { values: Float32Array; weight: number }>();
    opts.figures.forEach((f, k) => {
      const values = new Float32Array(N + CT.length);
      for (let i = 0; i < N; i++) values[i] = 0.01 * opts.clip * Math.sin(i + k);
      values.set(encodeFigures(CT, f, opts.clip), N);
      inputs.set(k + 1, { values, weight: opts.weights[k] });
    });
    const drops = opts.drop ? new Map([[opts.drop, 'masked-input' as const]]) : undefined;
    const { result } = simulateRound({ config, sites, inputs, drops, seed: opts.seed });
    return { result, out: decodeFigures(CT, result.mean.subarray(N), opts.clip, result.errorBound) };
  }

  /**
   * The resolution by hand: 1.5 (hi - lo) |S| / ((Q - 1) B) for a plain figure (B at its lowest
   * after the weights' own rounding, and float32's 2^-23 of the range added); for a group figure
   * (e_v + max(|lo|, |hi|) e_p) / (P - e_p), P the true share of weight that measured it.
   */
  function bounds(S: number, B: number, levels: number, share: number) {
    const Bmin = B - S / (levels - 1);
    const e = (range: number) => (1.5 * range * S) / ((levels - 1) * Bmin) + range * 2 ** -23;
    return {
      plain: (range: number) => e(range),
      group: (lo: number, hi: number) =>
        (e(hi - lo) + Math.max(Math.abs(lo), Math.abs(hi)) * e(1)) / (share - e(1)),
    };
  }

  const known: SiteFigures[] = [
    { train_loss: 0.31, mae: 120.5, psnr: 24.2, ssim: 0.71, nearest_synth: 0.12, nearest_real: 0.15 },
    { train_loss: 0.52, mae: 260.25, psnr: 19.8, ssim: 0.55, nearest_synth: 0.2, nearest_real: 0.18 },
    { train_loss: 0.08, mae: 88, psnr: 28.1, ssim: 0.83, nearest_synth: 0.09, nearest_real: 0.16 },
  ];

  it('three sites of known figures: each global figure is their weighted mean within the resolution', () => {
    const weights = [30, 10, 20];
    const levels = 65536;
    const maxWeight = 100;
    const { result, out } = round({ figures: known, weights, levels, maxWeight, clip: 0.5, seed: 'three' });
    expect(result.survivors).toEqual([1, 2, 3]);
    const sites = known.map((figures, k) => ({ figures, weight: weights[k] }));
    const b = bounds(3, 60 / maxWeight, levels, 1);
    for (const s of CT) {
      if (s.name === 'evaluated' || s.name === 'nearest_checked') continue;
      const name = s.name as keyof SiteFigures;
      const want = weightedMean(sites, name);
      const tol = name === 'train_loss' ? b.plain(s.hi - s.lo) : b.group(s.lo, s.hi);
      expect(Math.abs(out.get(name)!.value - want), name).toBeLessThanOrEqual(tol);
      expect(out.get(name)!.bound, name).toBeLessThanOrEqual(tol * 1.01);
    }
    // 60 / 100 of full weight: the CT MAE resolution is 1.5 x 4024 x 3 / (65535 x 0.6) = 0.46 HU.
    expect(b.plain(4024)).toBeCloseTo(0.46, 2);
  });

  it('a site without validation slices and a dropout: figures of those that measured and survived', () => {
    const figures: SiteFigures[] = [known[0], { train_loss: 0.4 }, known[1], known[2]];
    const weights = [40, 25, 5, 30];
    const levels = 2 ** 20;
    const maxWeight = 50;
    const { result, out } = round({
      figures,
      weights,
      levels,
      maxWeight,
      clip: 0.2,
      drop: 4,
      seed: 'dropout',
    });
    expect(result.survivors).toEqual([1, 2, 3]);
    const survived = [0, 1, 2].map((k) => ({ figures: figures[k], weight: weights[k] }));
    const B = 70 / maxWeight;
    const b = bounds(3, B, levels, 45 / 70);
    expect(Math.abs(out.get('train_loss')!.value - weightedMean(survived, 'train_loss'))).toBeLessThanOrEqual(
      b.plain(10),
    );
    for (const name of ['mae', 'psnr', 'ssim', 'nearest_real'] as const) {
      const s = slot(name);
      // Sites 1 and 3 measured: (40 v1 + 5 v3) / 45, not diluted by site 2's absence.
      expect(Math.abs(out.get(name)!.value - weightedMean(survived, name)), name).toBeLessThanOrEqual(
        b.group(s.lo, s.hi),
      );
    }
    expect(out.get('evaluated')!.value).toBeCloseTo(45 / 70, 3);
  });

  it('small sites against a large maxWeight lose resolution in proportion, and the bound still holds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(figuresArb, { minLength: 3, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (figures, weights, seed) => {
          const levels = 65536;
          const maxWeight = 1000;
          const { out } = round({ figures, weights, levels, maxWeight, clip: 0.05, seed: `p${seed}` });
          const sites = figures.map((f, k) => ({ figures: f as SiteFigures, weight: weights[k] }));
          const B = weights.reduce((a, w) => a + w, 0) / maxWeight;
          const b = bounds(3, B, levels, 1);
          const mae = slot('mae');
          expect(Math.abs(out.get('mae')!.value - weightedMean(sites, 'mae'))).toBeLessThanOrEqual(
            b.group(mae.lo, mae.hi),
          );
          expect(
            Math.abs(out.get('train_loss')!.value - weightedMean(sites, 'train_loss')),
          ).toBeLessThanOrEqual(b.plain(10));
        },
      ),
      { numRuns: 6 },
    );
  });
});
