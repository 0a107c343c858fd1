import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeIntensityMetrics, computeMetrics } from './metrics';
import { gaussian, mulberry32 } from './rng';

// The SynthRAD2023 evaluation, written with numpy and scikit-image: the independent oracle. A case
// gives its intensity range (clipping bounds, outside-of-mask value and data range); CT's
// [-1024, 3000] HU, with the bone MAE, when it gives none.
const ORACLE = `
import json, sys, numpy as np
from skimage.metrics import structural_similarity, peak_signal_noise_ratio
from skimage.util import crop
d = sys.argv[1]
out = []
for case in json.loads(sys.argv[2]):
    shape = tuple(reversed(case['dims']))
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]  # [nx, ny, 1] is a 2D image
    gt = np.fromfile(f"{d}/{case['name']}_ref.f32", dtype=np.float32).reshape(shape).astype(np.float64)
    pred = np.fromfile(f"{d}/{case['name']}_pred.f32", dtype=np.float32).reshape(shape).astype(np.float64)
    mask = np.fromfile(f"{d}/{case['name']}_mask.u8", dtype=np.uint8).reshape(shape) if case['mask'] else None
    ct = case.get('range') is None
    dr = (-1024., 3000.) if ct else tuple(float(v) for v in case['range'])
    width = dr[1] - dr[0]
    m = mask.astype(bool) if mask is not None else np.ones(shape, bool)
    mae = np.abs(gt[m] - pred[m]).mean()
    g, p = np.clip(gt, *dr), np.clip(pred, *dr)
    psnr = peak_signal_noise_ratio(g[m], p[m], data_range=width)
    if mask is not None:
        g = np.where(m, g, dr[0]); p = np.where(m, p, dr[0])
    g, p = g - dr[0], p - dr[0]
    full, smap = structural_similarity(g, p, data_range=width, full=True)
    ssim = full if mask is None else crop(smap, 3)[crop(m, 3)].mean(dtype=np.float64)
    pearson = np.corrcoef(gt[m], pred[m])[0, 1]
    r = {'mae': mae, 'psnr': psnr, 'ssim': float(ssim), 'pearson': pearson}
    if ct:
        bone = m & (gt > 200)
        r['maeBone'] = np.abs(gt[bone] - pred[bone]).mean()
    out.append(r)
print(json.dumps(out))
`;

function makeCase(dims: number[], seed: number) {
  const n = dims.reduce((a, b) => a * b, 1);
  const rnd = mulberry32(seed);
  const g = gaussian(rnd);
  const ref = new Float32Array(n);
  const pred = new Float32Array(n);
  const mask = new Uint8Array(n);
  const [nx, ny] = dims;
  for (let i = 0; i < n; i++) {
    const x = i % nx;
    const y = Math.floor(i / nx) % ny;
    const r = Math.hypot(x - nx / 2, y - ny / 2) / (Math.min(nx, ny) / 2);
    mask[i] = r < 0.8 ? 1 : 0;
    ref[i] = r < 0.3 ? 900 + 300 * g() : r < 0.8 ? 40 + 60 * g() : -1000 + 10 * g();
    pred[i] = ref[i] + 80 * g() + (rnd() < 0.01 ? 4000 : 0); // a few values beyond the clip range
  }
  return { ref, pred, mask };
}

// An MR- or PET-like image on the [0, 1] scale: a bright core, mid-grey tissue, a dark background
// (a little below 0 in places), and a prediction with a few values beyond [0, 1] either side.
function makeUnitCase(dims: number[], seed: number) {
  const n = dims.reduce((a, b) => a * b, 1);
  const rnd = mulberry32(seed);
  const g = gaussian(rnd);
  const ref = new Float32Array(n);
  const pred = new Float32Array(n);
  const mask = new Uint8Array(n);
  const [nx, ny] = dims;
  for (let i = 0; i < n; i++) {
    const x = i % nx;
    const y = Math.floor(i / nx) % ny;
    const r = Math.hypot(x - nx / 2, y - ny / 2) / (Math.min(nx, ny) / 2);
    mask[i] = r < 0.8 ? 1 : 0;
    ref[i] = r < 0.3 ? 0.8 + 0.1 * g() : r < 0.8 ? 0.4 + 0.08 * g() : 0.01 * g();
    const spike = rnd() < 0.01 ? (rnd() < 0.5 ? -1 : 1) : 0;
    pred[i] = ref[i] + 0.05 * g() + spike;
  }
  return { ref, pred, mask };
}

function runOracle(dir: string, cases: { name: string; dims: number[]; mask: boolean; range?: number[] }[]) {
  return JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', ORACLE, dir, JSON.stringify(cases)], { encoding: 'utf8' }),
  );
}

describe('metrics against scikit-image (SynthRAD2023 protocol)', () => {
  it('equals the oracle to 1e-6 relative, 2D and 3D, with and without a mask', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-metrics-'));
    const cases = [
      { name: 'a2d', dims: [41, 37], mask: true },
      { name: 'b2d', dims: [32, 29], mask: false },
      { name: 'c3d', dims: [24, 21, 15], mask: true },
      { name: 'd3d', dims: [17, 19, 9], mask: false },
    ];
    const ours = cases.map((c, k) => {
      const { ref, pred, mask } = makeCase(c.dims, 100 + k);
      writeFileSync(join(dir, `${c.name}_ref.f32`), Buffer.from(ref.buffer));
      writeFileSync(join(dir, `${c.name}_pred.f32`), Buffer.from(pred.buffer));
      writeFileSync(join(dir, `${c.name}_mask.u8`), mask);
      return computeMetrics(pred, ref, { dims: c.dims, mask: c.mask ? mask : undefined });
    });
    const oracle = runOracle(dir, cases);
    ours.forEach((m, k) => {
      for (const key of ['mae', 'psnr', 'ssim', 'pearson', 'maeBone'] as const) {
        const want = oracle[k][key];
        expect(
          Math.abs(m[key] - want) / Math.abs(want),
          `${cases[k].name}.${key}: ${m[key]} vs ${want}`,
        ).toBeLessThan(1e-6);
      }
    });
  });

  it('gives perfect scores for identical images and refuses mismatched shapes', () => {
    const { ref, mask } = makeCase([20, 20], 1);
    const m = computeMetrics(ref, ref, { dims: [20, 20], mask });
    expect(m.mae).toBe(0);
    expect(m.psnr).toBe(Infinity);
    expect(m.ssim).toBeCloseTo(1, 12);
    expect(() => computeMetrics(ref.subarray(1), ref, { dims: [20, 20] })).toThrow(
      /must both have 400 voxels/,
    );
    expect(() => computeMetrics(ref, ref, { dims: [20, 20], mask: new Uint8Array(3) })).toThrow(
      /mask has 3 voxels/,
    );
  });

  it('scores [0, 1] MR/PET targets as the oracle does with data range 1, 2D and 3D, with and without a mask', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-metrics-unit-'));
    const cases = [
      { name: 'u2d', dims: [41, 37], mask: true, range: [0, 1] },
      { name: 'v2d', dims: [32, 29], mask: false, range: [0, 1] },
      { name: 'w2d', dims: [23, 31, 1], mask: true, range: [0, 1] },
      { name: 'x3d', dims: [24, 21, 15], mask: true, range: [0, 1] },
      { name: 'y3d', dims: [17, 19, 9], mask: false, range: [0, 1] },
    ];
    const ours = cases.map((c, k) => {
      const { ref, pred, mask } = makeUnitCase(c.dims, 200 + k);
      writeFileSync(join(dir, `${c.name}_ref.f32`), Buffer.from(ref.buffer));
      writeFileSync(join(dir, `${c.name}_pred.f32`), Buffer.from(pred.buffer));
      writeFileSync(join(dir, `${c.name}_mask.u8`), mask);
      const m = computeIntensityMetrics(pred, ref, c.dims, c.mask ? mask : undefined);
      let inside = 0;
      for (let i = 0; i < mask.length; i++) if (!c.mask || mask[i]) inside++;
      expect(m.voxels).toBe(inside);
      expect(m).not.toHaveProperty('maeBone');
      return m;
    });
    const oracle = runOracle(dir, cases);
    ours.forEach((m, k) => {
      expect(oracle[k]).not.toHaveProperty('maeBone');
      for (const key of ['mae', 'psnr', 'ssim', 'pearson'] as const) {
        const want = oracle[k][key];
        expect(
          Math.abs(m[key] - want) / Math.abs(want),
          `${cases[k].name}.${key}: ${m[key]} vs ${want}`,
        ).toBeLessThan(1e-6);
      }
    });
  });

  it('scores the [0, 1] scale, not HU: perfect for identical images, refuses mismatched shapes', () => {
    const { ref, pred, mask } = makeUnitCase([20, 20], 3);
    const same = computeIntensityMetrics(ref, ref, [20, 20], mask);
    expect(same.mae).toBe(0);
    expect(same.psnr).toBe(Infinity);
    expect(same.ssim).toBeCloseTo(1, 12);
    expect(same.pearson).toBeCloseTo(1, 12);
    // The same numbers read as HU would sit in a 4024-wide range: a far higher PSNR and SSIM.
    const unit = computeIntensityMetrics(pred, ref, [20, 20], mask);
    const hu = computeMetrics(pred, ref, { dims: [20, 20], mask });
    expect(unit.mae).toBe(hu.mae);
    expect(unit.pearson).toBe(hu.pearson);
    expect(hu.psnr - unit.psnr).toBeGreaterThan(60);
    expect(unit.ssim).toBeLessThan(hu.ssim);
    expect(() => computeIntensityMetrics(ref.subarray(1), ref, [20, 20])).toThrow(
      /must both have 400 voxels/,
    );
    expect(() => computeIntensityMetrics(ref, ref, [20, 20], new Uint8Array(3))).toThrow(/mask has 3 voxels/);
  });
});
