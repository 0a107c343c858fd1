import { type PredictionType, toX0AndEps } from './objective';
import { seededUniform } from './rng';
import type { NoiseSchedule } from './schedule';
import { tf } from './tf';
import type { UNet } from './unet';

/** A denoiser: prediction for noisy input x_t (with the condition already concatenated) at timestep t. */
export type Denoiser = (input: tf.Tensor4D, t: tf.Tensor1D) => tf.Tensor4D;

/** Sampling settings. */
export interface SampleOptions {
  schedule: NoiseSchedule;
  prediction: PredictionType;
  /** Denoising steps (evenly spaced over T). */
  steps?: number;
  /** DDIM stochasticity: 0 = deterministic DDIM, 1 = DDPM-like. */
  eta?: number;
  /** Independent samples per input to average; their per-pixel standard deviation is the uncertainty. */
  samples?: number;
  seed?: number;
  /** Slices per model call. */
  batchSize?: number;
  /** Condition channels per slice in `source` (channel last); default 1. */
  channels?: number;
  /** Called after each denoising step of each batch. */
  onStep?: (done: number, total: number) => void;
  /**
   * Runs only the (sample, batch) pairs this returns true for, leaving the others' output zero
   * (threads each take a share; see ParallelSampler). Every slice draws its noise from its own
   * seed, so its result depends neither on which others run nor on the batch size.
   */
  only?: (sample: number, batch: number) => boolean;
}

/** The synthetic images (mean of the samples) and, with samples > 1, the per-pixel spread. */
export interface SampleResult {
  mean: Float32Array;
  std?: Float32Array;
  /** With `only`: each sample's images, zero outside the pairs that ran (to be merged). */
  samples?: Float32Array[];
}

/** The seed of one slice of one sample of a sampling run with seed `seed`. */
function taskSeed(seed: number, sample: number, slice: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (sample + 1), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (slice + 1), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Mean and (k > 1) per-pixel standard deviation of k samples' images. */
export function combineSamples(outs: Float32Array[]): SampleResult {
  const k = outs.length;
  const mean = new Float32Array(outs[0].length);
  for (const o of outs) for (let i = 0; i < mean.length; i++) mean[i] += o[i] / k;
  if (k === 1) return { mean };
  const std = new Float32Array(mean.length);
  for (const o of outs) for (let i = 0; i < std.length; i++) std[i] += (o[i] - mean[i]) ** 2 / (k - 1);
  for (let i = 0; i < std.length; i++) std[i] = Math.sqrt(std[i]);
  return { mean, std };
}

/** Evenly spaced timesteps from T-1 down to 0, `steps` of them (MONAI's DDIM spacing). */
export function samplingTimesteps(T: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > T)
    throw new RangeError(`steps must be an integer in [1, ${T}], got ${steps}`);
  const ratio = Math.floor(T / steps);
  return Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio);
}

async function run(
  denoise: Denoiser,
  source: Float32Array,
  count: number,
  size: number,
  opts: SampleOptions,
  kind: 'ddim' | 'ddpm',
): Promise<SampleResult> {
  const steps = opts.steps ?? (kind === 'ddim' ? 25 : 100);
  const eta = kind === 'ddpm' ? 1 : (opts.eta ?? 0);
  const k = opts.samples ?? 1;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const ts = samplingTimesteps(opts.schedule.T, steps);
  const ac = opts.schedule.alphasCumprod;
  const px = size * size;
  const ch = opts.channels ?? 1;
  if (source.length !== count * px * ch)
    throw new RangeError(
      `source holds ${source.length} values; ${count} slices of ${size}x${size}${ch > 1 ? ` with ${ch} channels` : ''} need ${count * px * ch}`,
    );
  const outs = Array.from({ length: k }, () => new Float32Array(count * px));
  const batches = Math.ceil(count / batchSize);
  const mine = (s: number, j: number) => !opts.only || opts.only(s, j);
  let total = 0;
  for (let s = 0; s < k; s++) for (let j = 0; j < batches; j++) if (mine(s, j)) total += steps;
  let done = 0;
  for (let s = 0; s < k; s++) {
    for (let j = 0; j < batches; j++) {
      if (!mine(s, j)) continue;
      const start = j * batchSize;
      const n = Math.min(batchSize, count - start);
      // Each slice's noise comes from its own seed: results do not depend on the batch size or on
      // how the batches are shared between threads.
      const rnds = Array.from({ length: n }, (_, z) => seededUniform(taskSeed(opts.seed ?? 0, s, start + z)));
      const noise = (std: number) =>
        tf.concat(
          rnds.map((r) => tf.randomNormal([1, size, size, 1], 0, std, 'float32', Math.floor(r() * 2 ** 31))),
          0,
        ) as tf.Tensor4D;
      const cond = tf.tensor4d(source.subarray(start * px * ch, (start + n) * px * ch), [n, size, size, ch]);
      let x = tf.tidy(() => noise(1));
      for (let i = 0; i < ts.length; i++) {
        const t = ts[i];
        const prev = i + 1 < ts.length ? ts[i + 1] : -1;
        const abT = ac[t];
        const abPrev = prev >= 0 ? ac[prev] : 1;
        const next = tf.tidy(() => {
          const sa = tf.scalar(Math.sqrt(abT)).reshape([1, 1, 1, 1]) as tf.Tensor4D;
          const sb = tf.scalar(Math.sqrt(1 - abT)).reshape([1, 1, 1, 1]) as tf.Tensor4D;
          const pred = denoise(
            tf.concat([x, cond], 3) as tf.Tensor4D,
            tf.fill([n], t, 'int32') as tf.Tensor1D,
          );
          const { x0: rawX0 } = toX0AndEps(opts.prediction, pred, x, sa, sb);
          const x0 = rawX0.clipByValue(-1, 1);
          // Recompute eps from the clipped x0 so the update stays consistent with it.
          const eps = x.sub(x0.mul(Math.sqrt(abT))).div(Math.sqrt(1 - abT));
          const sigma = eta * Math.sqrt((1 - abPrev) / (1 - abT)) * Math.sqrt(Math.max(0, 1 - abT / abPrev));
          let out = x0
            .mul(Math.sqrt(abPrev))
            .add(eps.mul(Math.sqrt(Math.max(0, 1 - abPrev - sigma * sigma))));
          if (sigma > 0 && prev >= 0) out = out.add(noise(sigma));
          return out as tf.Tensor4D;
        });
        x.dispose();
        x = next;
        opts.onStep?.(++done, total);
      }
      // Read asynchronously: the webgpu backend cannot read a GPU buffer synchronously in Node.
      outs[s].set(await x.data(), start * px);
      x.dispose();
      cond.dispose();
    }
  }
  if (opts.only) return { mean: outs[0], samples: outs };
  return combineSamples(outs);
}

/** The model as a denoiser. */
export function modelDenoiser(model: UNet): Denoiser {
  return (input, t) => model.apply(input, t);
}

/**
 * DDIM sampling (Song et al. 2021) conditioned on `source` slices (count x size x size, [-1, 1]):
 * `steps` evenly spaced steps, stochasticity `eta`, seeded; x0 is clipped to [-1, 1] each step.
 */
export function ddimSample(
  denoise: Denoiser,
  source: Float32Array,
  count: number,
  size: number,
  opts: SampleOptions,
): Promise<SampleResult> {
  return run(denoise, source, count, size, opts, 'ddim');
}

/**
 * Ancestral DDPM sampling (Ho et al. 2020) over `steps` evenly spaced timesteps (the respaced
 * process: eta = 1 in the DDIM parameterization).
 */
export function ddpmSample(
  denoise: Denoiser,
  source: Float32Array,
  count: number,
  size: number,
  opts: SampleOptions,
): Promise<SampleResult> {
  return run(denoise, source, count, size, opts, 'ddpm');
}
