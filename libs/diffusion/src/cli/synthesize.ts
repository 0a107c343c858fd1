import { resolve } from 'node:path';
import {
  createProgress,
  type FlagSpec,
  numFlag,
  oneOf,
  parseFlags,
  runCli,
  UsageError,
  usage,
} from '@fedsynth/cli-kit';
import {
  computeBodyMask,
  conditionChannels,
  conditionOf,
  formatTask,
  type NormalizedSubject,
  normalizeMr,
  readNifti,
  resize2d,
  type TaskSpec,
  unitToHu,
  type Volume,
  writeNifti,
} from '@fedsynth/imaging';
import { type BackendChoice, defaultThreads, selectBackend } from '../backend';
import { loadModel } from '../checkpoint';
import { memoryBudget, planSynthesis } from '../memory-plan';
import type { PredictionType } from '../objective';
import { ParallelSampler } from '../parallel-sampler';
import type { ScheduleName } from '../schedule';
import type { UNet } from '../unet';

const FLAGS: Record<string, FlagSpec> = {
  model: { type: 'string', valueName: 'file', description: 'trained model (.safetensors)' },
  input: { type: 'string', valueName: 'file', description: 'source image, e.g. mr.nii.gz' },
  out: {
    type: 'string',
    valueName: 'file',
    description: 'synthetic CT to write (.nii.gz), same geometry as the input',
  },
  mask: {
    type: 'string',
    valueName: 'file',
    description: 'body mask of the input (computed from the MRI when absent)',
  },
  steps: { type: 'string', valueName: 'n', description: 'DDIM steps', default: '25' },
  samples: { type: 'string', valueName: 'k', description: 'samples to average per slice', default: '1' },
  uncertainty: {
    type: 'string',
    valueName: 'file',
    description: 'also write the per-voxel spread of the samples (HU), needs --samples >= 2',
  },
  batch: {
    type: 'string',
    valueName: 'n|auto',
    description: 'slices per model call (auto: as many as the memory planner fits, up to 32)',
    default: 'auto',
  },
  backend: {
    type: 'string',
    valueName: 'name',
    description: 'auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu',
    default: 'auto',
  },
  seed: { type: 'string', valueName: 'n', description: 'random seed', default: '0' },
  threads: {
    type: 'string',
    valueName: 'n',
    description:
      'synthesis threads (default: all cores on wasm and cpu, 1 on the native backends; the same result as one)',
  },
};
const HELP = usage(
  'fedsynth-synthesize',
  '--model M --input mr.nii.gz --out sct.nii.gz [flags]',
  'Synthesizes a CT (HU) from an MRI volume slice by slice with DDIM, writing a NIfTI with the\ninput geometry. Slices whose larger side equals the model size are used as they are (padded to\nsquare); others are resampled to the model size and back. Prints one JSON line with the time.',
  FLAGS,
);

/** Pads a slice to square, resamples to the model size; `back` undoes it. */
function fitter(nx: number, ny: number, size: number) {
  const m = Math.max(nx, ny);
  const ox = (m - nx) >> 1;
  const oy = (m - ny) >> 1;
  return {
    to(img: Float32Array, fill: number): Float32Array {
      const sq = new Float32Array(m * m).fill(fill);
      for (let y = 0; y < ny; y++) sq.set(img.subarray(y * nx, (y + 1) * nx), (y + oy) * m + ox);
      return resize2d(sq, m, m, size, size);
    },
    back(img: Float32Array): Float32Array {
      const sq = resize2d(img, size, size, m, m);
      const out = new Float32Array(nx * ny);
      for (let y = 0; y < ny; y++) out.set(sq.subarray((y + oy) * m + ox, (y + oy) * m + ox + nx), y * nx);
      return out;
    },
  };
}

/**
 * Synthesizes a CT volume (HU) for an MRI volume; outside the body the result is air. With
 * `threads` > 1 the slices are shared between worker threads (the same result as one thread).
 */
export async function synthesizeVolume(
  model: UNet,
  mr: Volume,
  opts: {
    size: number;
    prediction: PredictionType;
    schedule: ScheduleName;
    steps: number;
    samples: number;
    batch: number;
    seed: number;
    mask?: Uint8Array;
    threads?: number;
    onStep?: (d: number, t: number) => void;
  },
): Promise<{ ct: Float32Array; spread?: Float32Array; batchSize: number; threads: number }> {
  const [nx, ny, nz] = mr.dims;
  const size = opts.size;
  const mask = opts.mask ?? computeBodyMask(mr.data, mr.dims);
  const norm = normalizeMr(mr.data, mask).data;
  const fit = fitter(nx, ny, size);
  const px = nx * ny;
  const source = new Float32Array(nz * size * size);
  for (let z = 0; z < nz; z++) source.set(fit.to(norm.subarray(z * px, (z + 1) * px), -1), z * size * size);
  // Enough batches for every thread to get a share (the result does not depend on the batch).
  const threads = Math.max(1, Math.min(opts.threads ?? 1, nz * opts.samples));
  const batchSize = Math.max(1, Math.min(opts.batch, Math.ceil(nz / threads)));
  const sampler = await ParallelSampler.create(model, { threads });
  let res: Awaited<ReturnType<typeof sampler.sample>>;
  try {
    res = await sampler.sample(source, nz, size, {
      schedule: opts.schedule,
      prediction: opts.prediction,
      steps: opts.steps,
      samples: opts.samples,
      seed: opts.seed,
      batchSize,
      onStep: opts.onStep,
    });
  } finally {
    await sampler.dispose();
  }
  const ct = new Float32Array(nx * ny * nz);
  const spread = res.std ? new Float32Array(nx * ny * nz) : undefined;
  for (let z = 0; z < nz; z++) {
    const slice = unitToHu(fit.back(res.mean.subarray(z * size * size, (z + 1) * size * size)));
    const sd = res.std ? fit.back(res.std.subarray(z * size * size, (z + 1) * size * size)) : undefined;
    for (let i = 0; i < px; i++) {
      const inside = mask[z * px + i] === 1;
      ct[z * px + i] = inside ? slice[i] : -1024;
      if (spread && sd) spread[z * px + i] = inside ? (sd[i] * 4024) / 2 : 0;
    }
  }
  return { ct, spread, batchSize, threads };
}

/**
 * Synthesizes a task's target for a normalized subject (its sources on the model's scale, see
 * normalizeTaskSubject): slice by slice with the task's condition channels, on the subject's grid,
 * on the model's [-1, 1] scale (outside the body: -1, air for CT, background for MR and PET);
 * unitToNative turns it into HU, SUV or normalized MR intensity.
 */
export async function synthesizeTask(
  model: UNet,
  subject: NormalizedSubject,
  task: TaskSpec,
  opts: {
    size: number;
    prediction: PredictionType;
    schedule: ScheduleName;
    steps: number;
    batch: number;
    seed: number;
    threads?: number;
    onStep?: (d: number, t: number) => void;
  },
): Promise<Float32Array> {
  const [nx, ny, nz] = subject.dims;
  const { size } = opts;
  const channels = conditionChannels(task);
  if (channels + 1 !== model.config.inChannels)
    throw new Error(
      `the model reads ${model.config.inChannels - 1} condition channel(s); the task ${formatTask(task)} gives ${channels}`,
    );
  const source = new Float32Array(nz * size * size * channels);
  for (let z = 0; z < nz; z++)
    source.set(conditionOf(subject, z, task.context, size), z * size * size * channels);
  const threads = Math.max(1, Math.min(opts.threads ?? 1, nz));
  const sampler = await ParallelSampler.create(model, { threads });
  let mean: Float32Array;
  try {
    ({ mean } = await sampler.sample(source, nz, size, {
      schedule: opts.schedule,
      prediction: opts.prediction,
      steps: opts.steps,
      seed: opts.seed,
      batchSize: Math.max(1, Math.min(opts.batch, Math.ceil(nz / threads))),
      onStep: opts.onStep,
    }));
  } finally {
    await sampler.dispose();
  }
  const fit = fitter(nx, ny, size);
  const px = nx * ny;
  const out = new Float32Array(px * nz);
  for (let z = 0; z < nz; z++) {
    const slice = fit.back(mean.subarray(z * size * size, (z + 1) * size * size));
    for (let i = 0; i < px; i++) out[z * px + i] = subject.mask[z * px + i] ? slice[i] : -1;
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-synthesize', HELP, async () => {
    const { values: v } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    for (const k of ['model', 'input', 'out']) if (!v[k]) throw new UsageError(`--${k} is required`);
    const samples = numFlag(v, 'samples', 1, 64, 1);
    if (v.uncertainty && samples < 2) throw new UsageError('--uncertainty needs --samples 2 or more');
    const info = await selectBackend(
      oneOf<BackendChoice>(
        v,
        'backend',
        ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'],
        'auto',
      ),
    );
    process.stderr.write(`backend: ${info.backend} (${info.device})\n`);
    const { model, metadata } = await loadModel(resolve(String(v.model)));
    const mr = await readNifti(resolve(String(v.input)));
    const mask = v.mask
      ? Uint8Array.from((await readNifti(resolve(String(v.mask)))).data, (x) => (x > 0 ? 1 : 0))
      : undefined;
    if (mask && mask.length !== mr.data.length)
      throw new Error(`--mask has ${mask.length} voxels; --input has ${mr.data.length}`);
    const steps = numFlag(v, 'steps', 1, 1000, 25);
    let bar: ReturnType<typeof createProgress> | undefined;
    let total = 0;
    const size = Number(metadata.size ?? 64);
    if (!Number.isInteger(size) || size < 8)
      throw new Error(`${v.model}: metadata size "${metadata.size}" is not a valid input size`);
    // Slices per model call: what fits this backend's memory, and no more than asked.
    const fits = planSynthesis(model.config, size, 32, memoryBudget(info.backend));
    const asked = v.batch === undefined || v.batch === 'auto' ? fits : numFlag(v, 'batch', 1, 1024, 8);
    const batch = Math.min(asked, fits);
    if (batch < asked)
      process.stderr.write(
        `--batch ${asked}: ${batch} slices of ${size} px fit in memory at once; using ${batch}\n`,
      );
    const resampled = Math.max(mr.dims[0], mr.dims[1]) !== size;
    process.stderr.write(
      `${mr.dims[2]} slices of ${mr.dims[0]}x${mr.dims[1]}, ${resampled ? `resampled to the model's ${size} px` : `at the model's native ${size} px`}, up to ${batch} per pass, ${steps} DDIM steps\n`,
    );
    const t0 = Date.now();
    const threads = numFlag(v, 'threads', 1, 256, defaultThreads(info.tfjsBackend));
    const {
      ct,
      spread,
      batchSize,
      threads: used,
    } = await synthesizeVolume(model, mr, {
      size,
      prediction: (metadata.prediction as PredictionType) ?? 'v',
      schedule: (metadata.schedule as ScheduleName) ?? 'cosine',
      steps,
      samples,
      batch,
      seed: numFlag(v, 'seed', 0, 2 ** 31 - 1, 0),
      mask,
      threads,
      onStep: (d, t) => {
        total = t;
        bar ??= createProgress(`synthesizing ${mr.dims[2]} slices`, t);
        bar.tick(d);
      },
    });
    bar?.done();
    const seconds = (Date.now() - t0) / 1000;
    process.stderr.write(
      `synthesized ${mr.dims[2]} slices in ${seconds.toFixed(1)} s (${used} thread${used > 1 ? 's' : ''}, ${batchSize} slices per pass)\n`,
    );
    await writeNifti(resolve(String(v.out)), { ...mr, data: ct }, { datatype: 'int16' });
    if (v.uncertainty && spread)
      await writeNifti(resolve(String(v.uncertainty)), { ...mr, data: spread }, { datatype: 'float32' });
    process.stdout.write(
      `${JSON.stringify({
        out: resolve(String(v.out)),
        slices: mr.dims[2],
        steps,
        samples,
        modelSteps: total,
        batch: batchSize,
        threads: used,
        resampled,
        seconds: Number(seconds.toFixed(1)),
        secondsPerSlice: Number((seconds / mr.dims[2]).toFixed(3)),
      })}\n`,
    );
    model.dispose();
    return 0;
  });
}
