import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeMetrics } from './metrics';
import { gaussian, mulberry32 } from './rng';

// The SynthRAD2023 evaluation, written with numpy and scikit-image: the independent oracle.
const ORACLE = `
import json, sys, numpy as np
from skimage.metrics import structural_similarity, peak_signal_noise_ratio
from skimage.util import crop
d = sys.argv[1]
out = []
for case in json.loads(sys.argv[2]):
    shape = tuple(reversed(case['dims']))
    gt = np.fromfile(f"{d}/{case['name']}_ref.f32", dtype=np.float32).reshape(shape).astype(np.float64)
    pred = np.fromfile(f"{d}/{case['name']}_pred.f32", dtype=np.float32).reshape(shape).astype(np.float64)
    mask = np.fromfile(f"{d}/{case['name']}_mask.u8", dtype=np.uint8).reshape(shape) if case['mask'] else None
    dr = (-1024., 3000.)
    m = mask.astype(bool) if mask is not None else np.ones(shape, bool)
    mae = np.abs(gt[m] - pred[m]).mean()
    g, p = np.clip(gt, *dr), np.clip(pred, *dr)
    psnr = peak_signal_noise_ratio(g[m], p[m], data_range=4024.)
    if mask is not None:
        g = np.where(m, g, dr[0]); p = np.where(m, p, dr[0])
    g, p = g - dr[0], p - dr[0]
    full, smap = structural_similarity(g, p, data_range=4024., full=True)
    ssim = full if mask is None else crop(smap, 3)[crop(m, 3)].mean(dtype=np.float64)
    pearson = np.corrcoef(gt[m], pred[m])[0, 1]
    bone = m & (gt > 200)
    out.append({'mae': mae, 'psnr': psnr, 'ssim': float(ssim), 'pearson': pearson, 'maeBone': np.abs(gt[bone] - pred[bone]).mean()})
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
    const oracle = JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', ORACLE, dir, JSON.stringify(cases)], { encoding: 'utf8' }),
    );
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
});
