import { computeMetrics, type SlicePair, unitToHu } from '@fedsynth/imaging';
import { stackSlices } from './data';
import type { PredictionType } from './objective';
import { ddimSample, modelDenoiser } from './sampler';
import type { NoiseSchedule } from './schedule';
import type { UNet } from './unet';

/** Mean per-slice image metrics (HU, inside the body mask) of DDIM syntheses against the real CT. */
export interface EvalResult {
  mae: number;
  psnr: number;
  ssim: number;
  slices: number;
  voxels: number;
}

/**
 * Synthesizes CT for validation slices with DDIM and scores them the SynthRAD2023 way per slice
 * (2D), averaging MAE, PSNR and SSIM over slices weighted by body voxels.
 */
export function evaluateSlices(
  model: UNet,
  slices: SlicePair[],
  opts: {
    schedule: NoiseSchedule;
    prediction: PredictionType;
    steps?: number;
    seed?: number;
    batchSize?: number;
    onStep?: (d: number, t: number) => void;
  },
): EvalResult {
  if (slices.length === 0) throw new Error('no validation slices');
  const b = stackSlices(slices);
  const { mean } = ddimSample(modelDenoiser(model), b.source, b.count, b.size, {
    schedule: opts.schedule,
    prediction: opts.prediction,
    steps: opts.steps ?? 25,
    seed: opts.seed ?? 0,
    batchSize: opts.batchSize ?? 16,
    onStep: opts.onStep,
  });
  const px = b.size * b.size;
  let mae = 0;
  let psnr = 0;
  let ssim = 0;
  let voxels = 0;
  for (let i = 0; i < b.count; i++) {
    const pred = unitToHu(mean.subarray(i * px, (i + 1) * px));
    const ref = unitToHu(b.target.subarray(i * px, (i + 1) * px));
    const mask = b.mask!.subarray(i * px, (i + 1) * px);
    const m = computeMetrics(pred, ref, { dims: [b.size, b.size], mask });
    if (!(m.voxels > 0)) continue;
    mae += m.mae * m.voxels;
    psnr += m.psnr * m.voxels;
    ssim += m.ssim * m.voxels;
    voxels += m.voxels;
  }
  return { mae: mae / voxels, psnr: psnr / voxels, ssim: ssim / voxels, slices: b.count, voxels };
}
