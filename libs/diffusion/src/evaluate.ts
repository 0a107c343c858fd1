import {
  computeIntensityMetrics,
  computeMetrics,
  type IntensityKind,
  type SlicePair,
  unitToHu,
} from '@fedsynth/imaging';
import { stackSlices } from './data';
import type { PredictionType } from './objective';
import { ParallelSampler } from './parallel-sampler';
import { ddimSample, modelDenoiser } from './sampler';
import type { NoiseSchedule, ScheduleName } from './schedule';
import type { UNet } from './unet';

/** How slices are synthesized for scoring. */
export interface EvalOptions {
  schedule: NoiseSchedule;
  prediction: PredictionType;
  steps?: number;
  seed?: number;
  batchSize?: number;
  onStep?: (d: number, t: number) => void;
  /**
   * How the target is scored: CT in HU (the default); MR and PET on the normalized [0, 1] scale
   * (the model's [-1, 1] mapped by (u + 1) / 2), data range 1.
   */
  targetKind?: IntensityKind;
}

/** Mean per-slice image metrics (HU, inside the body mask) of DDIM syntheses against the real CT. */
export interface EvalResult {
  mae: number;
  psnr: number;
  ssim: number;
  slices: number;
  voxels: number;
  /** The synthesized slices on the model's scale, one per validation slice (for further checks). */
  images: Float32Array[];
}

/**
 * Synthesizes CT for validation slices with DDIM and scores them the SynthRAD2023 way per slice
 * (2D), averaging MAE, PSNR and SSIM over slices weighted by body voxels.
 */
export async function evaluateSlices(
  model: UNet,
  slices: SlicePair[],
  opts: EvalOptions,
): Promise<EvalResult> {
  if (slices.length === 0) throw new Error('no validation slices');
  const b = stackSlices(slices);
  const { mean } = await ddimSample(modelDenoiser(model), b.source, b.count, b.size, {
    schedule: opts.schedule,
    prediction: opts.prediction,
    steps: opts.steps ?? 25,
    seed: opts.seed ?? 0,
    batchSize: opts.batchSize ?? 16,
    channels: b.channels,
    onStep: opts.onStep,
  });
  return score(mean, b, opts.targetKind ?? 'ct');
}

/**
 * evaluateSlices on `threads` threads (see ParallelSampler): the same figures, since every slice
 * draws its noise from its own seed.
 */
export async function evaluateSlicesParallel(
  model: UNet,
  slices: SlicePair[],
  opts: Omit<EvalOptions, 'schedule'> & { schedule: ScheduleName; threads: number },
): Promise<EvalResult> {
  if (slices.length === 0) throw new Error('no validation slices');
  const b = stackSlices(slices);
  const threads = Math.max(1, Math.min(opts.threads, b.count));
  const sampler = await ParallelSampler.create(model, { threads });
  try {
    const { mean } = await sampler.sample(b.source, b.count, b.size, {
      schedule: opts.schedule,
      prediction: opts.prediction,
      steps: opts.steps ?? 25,
      seed: opts.seed ?? 0,
      // Enough batches for every thread to get a share.
      batchSize: Math.max(1, Math.min(opts.batchSize ?? 16, Math.ceil(b.count / threads))),
      onStep: opts.onStep,
    });
    return score(mean, b, opts.targetKind ?? 'ct');
  } finally {
    await sampler.dispose();
  }
}

/** Per-slice metrics of synthesized slices against the batch's target, weighted by body voxels. */
function score(mean: Float32Array, b: ReturnType<typeof stackSlices>, kind: IntensityKind): EvalResult {
  const px = b.size * b.size;
  let mae = 0;
  let psnr = 0;
  let ssim = 0;
  let voxels = 0;
  for (let i = 0; i < b.count; i++) {
    const mask = b.mask!.subarray(i * px, (i + 1) * px);
    const pu = mean.subarray(i * px, (i + 1) * px);
    const ru = b.target.subarray(i * px, (i + 1) * px);
    const m =
      kind === 'ct'
        ? computeMetrics(unitToHu(pu), unitToHu(ru), { dims: [b.size, b.size], mask })
        : computeIntensityMetrics(
            Float32Array.from(pu, (v) => (v + 1) / 2),
            Float32Array.from(ru, (v) => (v + 1) / 2),
            [b.size, b.size],
            mask,
          );
    if (!(m.voxels > 0)) continue;
    mae += m.mae * m.voxels;
    psnr += m.psnr * m.voxels;
    ssim += m.ssim * m.voxels;
    voxels += m.voxels;
  }
  const images = Array.from({ length: b.count }, (_, i) => mean.slice(i * px, (i + 1) * px));
  return { mae: mae / voxels, psnr: psnr / voxels, ssim: ssim / voxels, slices: b.count, voxels, images };
}
