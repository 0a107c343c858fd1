import { freemem, totalmem } from 'node:os';
import type { BackendName } from './backend';
import { cudaInfo } from './gpu-info';
import type { UNetConfig } from './unet-config';
import { unetLayout } from './unet-config';

/**
 * The memory planner: estimates the peak tensor memory of a training step or a synthesis pass of
 * the U-Net from its shape, and picks the micro-batch (and whether to checkpoint activations) that
 * fits the backend's memory, before anything runs.
 *
 * Per slice, memory follows three features of the network: its feature maps (pixels x channels at
 * each level, times the residual blocks there), its attention matrices (heads x tokens^2 in every
 * attention block) and a constant. The coefficients are fitted to peaks measured with
 * `tf.profile` on the wasm backend (tfjs 4.22) for the default U-Net at 32 to 256 px and a variant
 * with attention at its lower levels (refit with
 * `npm run calibrate:memory`); `memory-plan.test.ts` checks them against measured peaks of other
 * networks and sizes.
 */

/**
 * Floats per slice: coefficients of [block feature maps, other feature maps, attention matrices,
 * constant] (see memoryFeatures), per pass kind.
 */
const COEFFS = {
  /** A training step keeping every activation for the backward pass. */
  train: [31.19, 14.08, 6.904, 4.324e6],
  /** A training step with checkpointed blocks. */
  checkpointed: [4.328, 59.9, 4.358, 3.349e6],
  /** A forward pass without gradients (synthesis, evaluation). */
  forward: [1.04, 23.2, 1.113, 1.274e5],
} satisfies Record<string, [number, number, number, number]>;

export type PassKind = keyof typeof COEFFS;

/**
 * The per-slice features of a network at a size: floats of the feature maps of its residual
 * blocks (per level: pixels x channels x blocks there), of its feature maps once per level (the
 * convolutions in and out, down- and upsamplers, which checkpointing does not cover), of its
 * attention matrices (tokens^2 per head: every head of every block when a plain training step
 * keeps them all for the backward pass, one head at a time otherwise, see UNet.attention), and a
 * constant.
 */
export function memoryFeatures(config: UNetConfig, size: number, kind: PassKind): number[] {
  const L = config.channels.length;
  const blocks = 2 * config.numResBlocks + 1; // down and up residual blocks at a level
  let blockMaps = 0;
  let levelMaps = 0;
  let attention = 0;
  const attend = (tokens: number, heads: number, count: number) => {
    if (kind === 'train') attention += heads * tokens * tokens * count;
    else attention = Math.max(attention, tokens * tokens);
  };
  for (let l = 0; l < L; l++) {
    const s = size / 2 ** l;
    blockMaps += s * s * config.channels[l] * blocks;
    levelMaps += s * s * config.channels[l];
    if (config.attentionLevels[l]) attend(s * s, config.channels[l] / config.numHeadChannels, blocks);
  }
  const last = size / 2 ** (L - 1);
  attend(last * last, config.channels[L - 1] / config.numHeadChannels, 1);
  return [blockMaps, levelMaps, attention, 1];
}

/** Bytes of the weights, their gradients, Adam's moments, the EMA and the FedProx anchor. */
export function fixedTrainingBytes(config: UNetConfig): number {
  const params = unetLayout(config).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  return params * 4 * 7;
}

/** Headroom over the fitted figure: the fit is within about 15% below the measured peak on the networks tested. */
const SAFETY = 1.2;

/** Estimated peak bytes of one pass over `slices` slices of `size` px. */
export function estimatePeakBytes(config: UNetConfig, size: number, slices: number, kind: PassKind): number {
  const f = memoryFeatures(config, size, kind);
  const c = COEFFS[kind];
  const perSlice = 4 * SAFETY * f.reduce((sum, x, i) => sum + c[i] * x, 0);
  const fixed = kind === 'forward' ? fixedTrainingBytes(config) / 7 : fixedTrainingBytes(config);
  return fixed + slices * perSlice;
}

/** tfjs's wasm backend addresses at most 4 GiB; part of it is lost to heap growth and fragmentation. */
const WASM_HEAP = 4 * 2 ** 30;
/** Share of the wasm heap that tensors may use (the rest: fragmentation and the runtime). */
const WASM_USABLE = 0.75;
/** Share of the machine's memory that a native or cpu backend may use. */
const HOST_USABLE = 0.6;
/** What the webgpu backend may use on a GPU whose memory no driver reports (not NVIDIA). */
const WEBGPU_UNKNOWN_DEVICE = 4 * 2 ** 30;

/**
 * Bytes of tensor memory one training thread may use on this machine: the machine's share (60% of
 * its memory) split between the threads, and on wasm no more than 3 GiB of the thread's own 4 GiB
 * heap; on tensorflow-gpu and webgpu 90% of the first GPU's memory (nvidia-smi, or `deviceBytes`),
 * and on webgpu without nvidia-smi at most 4 GiB.
 */
export function memoryBudget(
  backend: BackendName,
  opts: { threads?: number; deviceBytes?: number } = {},
): number {
  const host = (Math.max(freemem(), totalmem() * 0.5) * HOST_USABLE) / Math.max(1, opts.threads ?? 1);
  if (backend === 'wasm') return Math.min(WASM_HEAP * WASM_USABLE, host);
  if (backend === 'tensorflow-gpu' || backend === 'webgpu') {
    const device = opts.deviceBytes ?? (cudaInfo().gpus[0]?.memoryMiB ?? 0) * 2 ** 20;
    if (device > 0) return device * 0.9;
    // WebGPU does not tell a GPU's memory; where no driver does either, assume a modest card.
    if (backend === 'webgpu') return Math.min(host, WEBGPU_UNKNOWN_DEVICE);
  }
  return host;
}

/** How a training step is run to fit: slices per pass and whether blocks are checkpointed. */
export interface TrainingPlan {
  size: number;
  batch: number;
  microBatch: number;
  checkpointing: boolean;
  peakBytes: number;
  budgetBytes: number;
}

/** Raised when not even one slice fits; the message names what would. */
export class MemoryPlanError extends Error {}

const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;

/**
 * The largest micro-batch (at most `batch`) that fits `budget`, without checkpointing when it
 * reaches the same micro-batch as with it (checkpointing costs about one more forward pass).
 */
export function planTraining(config: UNetConfig, size: number, batch: number, budget: number): TrainingPlan {
  const fit = (kind: PassKind) => {
    let m = batch;
    while (m >= 1 && estimatePeakBytes(config, size, m, kind) > budget) m--;
    return m;
  };
  const plain = fit('train');
  const ck = fit('checkpointed');
  if (ck < 1) {
    const largest = largestSize(config, 1, budget, 'checkpointed');
    throw new MemoryPlanError(
      `one ${size}x${size} slice needs about ${mib(estimatePeakBytes(config, size, 1, 'checkpointed'))} to train, ` +
        `more than the ${mib(budget)} available; ${largest ? `the largest size that fits is ${largest} px` : 'no size fits'}` +
        ' (a smaller model, or a backend with more memory, fits more)',
    );
  }
  const checkpointing = ck > plain;
  const microBatch = checkpointing ? ck : plain;
  const kind = checkpointing ? 'checkpointed' : 'train';
  return {
    size,
    batch,
    microBatch,
    checkpointing,
    peakBytes: estimatePeakBytes(config, size, microBatch, kind),
    budgetBytes: budget,
  };
}

/**
 * The plan of a data-parallel run: each of `threads` threads takes ceil(batch / threads) slices
 * of a step, within `budgetBytes` each (default: memoryBudget).
 */
export function planTrainingRun(opts: {
  config: UNetConfig;
  size: number;
  batch: number;
  backend: BackendName;
  threads: number;
  budgetBytes?: number;
}): TrainingPlan {
  const share = Math.ceil(opts.batch / Math.max(1, opts.threads));
  const budget = opts.budgetBytes ?? memoryBudget(opts.backend, { threads: opts.threads });
  return planTraining(opts.config, opts.size, share, budget);
}

/** One line for logs: what the plan does and why. */
export function describePlan(plan: TrainingPlan): string {
  return (
    `memory: ${plan.microBatch} of ${plan.batch} slices per pass${plan.checkpointing ? ', checkpointed activations' : ''}` +
    ` (about ${mib(plan.peakBytes)} of ${mib(plan.budgetBytes)} per thread)`
  );
}

/** Slices per synthesis pass that fit (at most `wanted`); throws naming the limit when none do. */
export function planSynthesis(config: UNetConfig, size: number, wanted: number, budget: number): number {
  let m = wanted;
  while (m >= 1 && estimatePeakBytes(config, size, m, 'forward') > budget) m--;
  if (m < 1)
    throw new MemoryPlanError(
      `one ${size}x${size} slice needs about ${mib(estimatePeakBytes(config, size, 1, 'forward'))} to synthesize, ` +
        `more than the ${mib(budget)} available`,
    );
  return m;
}

/** The largest size (a multiple of what the network needs, up to 1024) with `slices` per pass fitting. */
export function largestSize(
  config: UNetConfig,
  slices: number,
  budget: number,
  kind: PassKind,
): number | null {
  const step = 2 ** (config.channels.length - 1) * 8;
  let best: number | null = null;
  for (let s = step; s <= 1024; s += step) if (estimatePeakBytes(config, s, slices, kind) <= budget) best = s;
  return best;
}

/** For `doctor`: the largest batch that trains at common sizes, and the largest size at all. */
export function trainingCapacity(
  config: UNetConfig,
  budget: number,
): { size: number; maxBatch: number; checkpointing: boolean }[] {
  return [64, 128, 256, 512].map((size) => {
    let best = { size, maxBatch: 0, checkpointing: false };
    for (const kind of ['train', 'checkpointed'] as const) {
      let m = 0;
      while (m < 256 && estimatePeakBytes(config, size, m + 1, kind) <= budget) m++;
      if (m > best.maxBatch) best = { size, maxBatch: m, checkpointing: kind === 'checkpointed' };
    }
    return best;
  });
}
