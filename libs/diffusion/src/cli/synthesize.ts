import { stat } from 'node:fs/promises';
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
  DEFAULT_TASK,
  type FoundModality,
  formatTask,
  kindOf,
  MODALITIES,
  type Modality,
  type NormalizedSubject,
  normalizeMr,
  normalizeTaskSubject,
  parseTask,
  petDoseFromSidecar,
  petSuvFactor,
  readModality,
  readNifti,
  resize2d,
  sameGeometry,
  suvFactor,
  type TaskSpec,
  type TaskSubject,
  taskBodyMask,
  unitToHu,
  unitToNative,
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
  input: {
    type: 'string',
    valueName: '[modality=]file',
    description:
      "a source image: one per source of the model's task, e.g. --input t1=t1.nii.gz --input t2=t2.nii.gz, or a plain file for a one-source task (NIfTI; for models of tasks other than MRI -> CT also PNG or a DICOM series' folder)",
    multiple: true,
  },
  out: {
    type: 'string',
    valueName: 'file',
    description:
      "the task's target to write (.nii.gz), same geometry as the input: CT in HU (int16), PET in SUV and MR normalized to 0..1 (float32)",
  },
  mask: {
    type: 'string',
    valueName: 'file',
    description: 'body mask of the input (computed from the input when absent)',
  },
  'pet-dose': {
    type: 'string',
    valueName: 'file',
    description:
      "a PET source's dose sidecar (JSON: weight and injected dose) for SUV (default: pet.json or <file>.json beside the PET file, or the DICOM header)",
  },
  steps: { type: 'string', valueName: 'n', description: 'DDIM steps', default: '25' },
  samples: { type: 'string', valueName: 'k', description: 'samples to average per slice', default: '1' },
  uncertainty: {
    type: 'string',
    valueName: 'file',
    description:
      'also write the per-voxel spread of the samples (HU), needs --samples >= 2; MRI -> CT models only',
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
  '--model M --input [modality=]FILE [--input ...] --out FILE [flags]',
  "Synthesizes the target of the model's task (recorded in the model; MRI -> CT when it records\n" +
    'none) slice by slice with DDIM, writing a NIfTI with the input geometry: a synthetic CT (HU)\n' +
    'from an MRI, or e.g. a CT from T1 and T2 (--input t1=t1.nii.gz --input t2=t2.nii.gz), a FLAIR\n' +
    'from a T1, an MR from a PET (with its dose for SUV). Slices whose larger side equals the model\n' +
    'size are used as they are (padded to square); others are resampled to the model size and back.\n' +
    'Prints one JSON line with the time.',
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
 * Threads and slices per model call for nz slices: enough batches for every thread to get a share
 * (the result depends on neither).
 */
function passPlan(nz: number, samples: number, threads = 1, batch = 1) {
  const t = Math.max(1, Math.min(threads, nz * samples));
  return { threads: t, batchSize: Math.max(1, Math.min(batch, Math.ceil(nz / t))) };
}

/**
 * Synthesizes a CT volume (HU) for an MRI volume, normalized by its percentiles (normalizeMr) as the
 * task mr-to-ct is trained; outside the body the result is air. With
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
  const { threads, batchSize } = passPlan(nz, opts.samples, opts.threads, opts.batch);
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
 * unitToNative turns it into HU, SUV or normalized MR intensity. With `samples` > 1, the mean of
 * that many samples per slice.
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
    samples?: number;
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
  const samples = opts.samples ?? 1;
  const { threads, batchSize } = passPlan(nz, samples, opts.threads, opts.batch);
  const sampler = await ParallelSampler.create(model, { threads });
  let mean: Float32Array;
  try {
    ({ mean } = await sampler.sample(source, nz, size, {
      schedule: opts.schedule,
      prediction: opts.prediction,
      steps: opts.steps,
      samples,
      seed: opts.seed,
      batchSize,
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

/** The source files of a task's synthesis, by modality. */
export type TaskInputs = Partial<Record<Modality, string>>;

const MODALITY_PREFIX = new RegExp(`^(${MODALITIES.join('|')})=(.*)$`, 'i');
const NEXT_INPUT = new RegExp(`,\\s*(?=(?:${MODALITIES.join('|')})=)`, 'i');

/**
 * Whether a task is the platform's original MRI -> CT (one `mr` source, 2D, MR by its percentiles:
 * synthesizeVolume's normalization). Any other, `mr-to-ct:mr=landmarks` too, is synthesized the
 * task's way (readTaskInputs, synthesizeTask), which scales MR as the task says.
 */
export function isMriToCt(task: TaskSpec): boolean {
  return formatTask(task) === formatTask(DEFAULT_TASK);
}

/**
 * Which file holds each source of `task`, from `--input` values: `<modality>=<file>`
 * (t1=t1.nii.gz), several in one value separated by commas (t1=t1.nii.gz,t2=t2.nii.gz), or for a
 * task with one source a plain file. Errors (UsageError) name a missing source, a modality the
 * task does not use and a modality given twice.
 */
export function taskInputsOf(values: readonly string[], task: TaskSpec): TaskInputs {
  const name = formatTask(task);
  const items = values.flatMap((v) => v.split(NEXT_INPUT));
  const inputs: TaskInputs = {};
  const plain: string[] = [];
  for (const item of items) {
    const m = MODALITY_PREFIX.exec(item);
    if (!m) {
      plain.push(item);
      continue;
    }
    const modality = m[1].toLowerCase() as Modality;
    const file = m[2];
    if (!file) throw new UsageError(`--input ${item}: no file after "${modality}="`);
    if (!task.sources.includes(modality))
      throw new UsageError(
        modality === task.target
          ? `--input ${item}: ${modality} is what the model's task ${name} synthesizes, not one of its sources (${task.sources.join(', ')})`
          : `--input ${item}: the model's task ${name} does not use ${modality} (its sources: ${task.sources.join(', ')})`,
      );
    if (inputs[modality] !== undefined)
      throw new UsageError(`--input ${modality} is given twice (${inputs[modality]} and ${file})`);
    inputs[modality] = file;
  }
  if (plain.length > 0) {
    if (task.sources.length > 1)
      throw new UsageError(
        `--input ${plain[0]}: the model's task ${name} has ${task.sources.length} sources; name each one's file: ${task.sources.map((m) => `--input ${m}=FILE`).join(' ')}`,
      );
    if (plain.length > 1 || Object.keys(inputs).length > 0)
      throw new UsageError(
        `the model's task ${name} has one source (${task.sources[0]}); give one --input, not ${items.length}`,
      );
    if (!plain[0]) throw new UsageError('--input: no file');
    inputs[task.sources[0]] = plain[0];
  }
  const missing = task.sources.filter((m) => inputs[m] === undefined);
  if (missing.length > 0)
    throw new UsageError(
      `the model's task ${name} needs ${missing.map((m) => `--input ${m}=FILE`).join(' and ')}`,
    );
  return inputs;
}

/** An input path as findModality would have found it: a DICOM series' folder, a PNG, or NIfTI. */
async function foundOf(path: string, modality: Modality, flag: string): Promise<FoundModality> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw new Error(`${flag}: ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  if (isDir) return { format: 'dicom', path, modality };
  return { format: /\.png$/i.test(path) ? 'png' : 'nifti', path, modality };
}

/** The largest difference between two affines' entries (mm). */
function affineGap(a: Volume, b: Volume): number {
  let gap = 0;
  for (let i = 0; i < 16; i++) gap = Math.max(gap, Math.abs(a.affine[i] - b.affine[i]));
  return gap;
}

/**
 * normalizeTaskSubject for a subject without the task's target (what synthesis has): the sources
 * checked and normalized the same way, the body mask from the mask file or from the sources. The
 * result's `target` is empty.
 */
export function normalizeTaskSources(s: TaskSubject, task: TaskSpec): NormalizedSubject {
  const first = s.volumes[task.sources[0]];
  if (!first) return normalizeTaskSubject(s, task); // names what is missing
  const sources = Object.fromEntries(
    Object.entries(s.volumes).filter(([m]) => m !== task.target),
  ) as TaskSubject['volumes'];
  const mask: Volume = s.mask ?? {
    ...first,
    data: Float32Array.from(taskBodyMask({ ...s, volumes: sources }, task)),
  };
  // A stand-in target on the sources' grid: normalizeTaskSubject checks and scales the sources,
  // and the stand-in (zeros) is dropped. PET's factor only matters for a PET source.
  const n = normalizeTaskSubject(
    {
      ...s,
      volumes: { ...sources, [task.target]: { ...first, data: new Float32Array(first.data.length) } },
      mask,
      ...(kindOf(task.target) === 'pet' && s.suvFactor === undefined ? { suvFactor: 1 } : {}),
    },
    task,
  );
  return { ...n, target: new Float32Array(0) };
}

/** A task's inputs read and checked: the subject, its sources normalized, and the grid to write on. */
export interface TaskInputVolumes {
  subject: TaskSubject;
  normalized: NormalizedSubject;
  /** The first source's volume: the output's geometry. */
  reference: Volume;
}

/**
 * Reads a task's source files (NIfTI, PNG, or a folder holding a DICOM series), the optional
 * mask (NIfTI) and, for a PET source, its SUV factor: from `petDose` (a JSON sidecar, see
 * petDoseFromSidecar) when given, else as petSuvFactor finds it (pet.json or <file>.json beside a
 * NIfTI, the DICOM header). Every input must be on the first's grid (dims and affine); errors
 * name both files. Returns the subject and its sources on the model's scale.
 */
export async function readTaskInputs(
  task: TaskSpec,
  inputs: TaskInputs,
  opts: { mask?: string; petDose?: string } = {},
): Promise<TaskInputVolumes> {
  const name = formatTask(task);
  if (opts.petDose !== undefined && !task.sources.includes('pet'))
    throw new UsageError(`--pet-dose: the model's task ${name} has no PET source`);
  const volumes: TaskSubject['volumes'] = {};
  const origins: TaskSubject['origins'] = {};
  const flag = (m: Modality) => `--input ${m}=${inputs[m]}`;
  let suv: number | undefined;
  const [first] = task.sources;
  for (const m of task.sources) {
    const file = inputs[m];
    if (file === undefined) throw new UsageError(`the model's task ${name} needs --input ${m}=FILE`);
    const found = await foundOf(resolve(file), m, flag(m));
    const vol = await readModality(found);
    const ref = volumes[first];
    if (ref && vol.dims.some((d, i) => d !== ref.dims[i]))
      throw new Error(
        `${flag(m)} is ${vol.dims.join('x')} but ${flag(first)} is ${ref.dims.join('x')}; the inputs must be on one grid`,
      );
    if (ref && !sameGeometry(vol, ref, 0.01))
      throw new Error(
        `${flag(m)} and ${flag(first)} are on different grids (their affines differ by up to ${affineGap(vol, ref).toPrecision(3)} mm); resample one onto the other`,
      );
    volumes[m] = vol;
    origins[m] = found.path;
    if (m === 'pet')
      suv =
        opts.petDose !== undefined
          ? suvFactor(await petDoseFromSidecar(resolve(opts.petDose)))
          : await petSuvFactor(found);
  }
  const reference = volumes[first] as Volume;
  let mask: Volume | undefined;
  if (opts.mask !== undefined) {
    mask = await readNifti(resolve(opts.mask));
    if (mask.dims.some((d, i) => d !== reference.dims[i]))
      throw new Error(
        `--mask ${opts.mask} is ${mask.dims.join('x')} but ${flag(first)} is ${reference.dims.join('x')}`,
      );
  }
  const subject: TaskSubject = {
    id: 'input',
    volumes,
    origins,
    ...(mask ? { mask } : {}),
    ...(suv !== undefined ? { suvFactor: suv } : {}),
  };
  return { subject, normalized: normalizeTaskSources(subject, task), reference };
}

/**
 * Writes a synthesized target (the model's [-1, 1] scale, see synthesizeTask) in its native units
 * on the reference's grid: CT in HU as int16, PET in SUV and MR normalized to 0..1 as float32.
 */
export async function writeTaskOutput(
  path: string,
  task: TaskSpec,
  unit: Float32Array,
  reference: Volume,
): Promise<void> {
  const kind = kindOf(task.target);
  await writeNifti(
    path,
    { ...reference, data: unitToNative(kind, unit) },
    { datatype: kind === 'ct' ? 'int16' : 'float32' },
  );
}

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-synthesize', HELP, async () => {
    const { values: v, lists } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    for (const k of ['model', 'input', 'out'])
      if (k === 'input' ? lists.input.length === 0 : !v[k]) throw new UsageError(`--${k} is required`);
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
    try {
      // The model's own task (MRI -> CT for models made before tasks were recorded).
      const task = metadata.task ? parseTask(metadata.task) : DEFAULT_TASK;
      const inputs = taskInputsOf(lists.input, task);
      const mriToCt = isMriToCt(task);
      if (!mriToCt && v.uncertainty)
        throw new UsageError(
          `--uncertainty is for MRI -> CT models (mr-to-ct, percentile MR scale); the model's task is ${formatTask(task)}`,
        );
      if (mriToCt && v['pet-dose'] !== undefined)
        throw new UsageError("--pet-dose: the model's task mr-to-ct has no PET source");
      let ref: Volume;
      let mask: Uint8Array | undefined;
      let sources: TaskInputVolumes | undefined;
      if (mriToCt) {
        ref = await readNifti(resolve(String(inputs.mr)));
        mask = v.mask
          ? Uint8Array.from((await readNifti(resolve(String(v.mask)))).data, (x) => (x > 0 ? 1 : 0))
          : undefined;
        if (mask && mask.length !== ref.data.length)
          throw new Error(`--mask has ${mask.length} voxels; --input has ${ref.data.length}`);
      } else {
        sources = await readTaskInputs(task, inputs, {
          ...(v.mask ? { mask: String(v.mask) } : {}),
          ...(v['pet-dose'] !== undefined ? { petDose: String(v['pet-dose']) } : {}),
        });
        ref = sources.reference;
      }
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
      const [nx, ny, nz] = ref.dims;
      const resampled = Math.max(nx, ny) !== size;
      process.stderr.write(
        `${mriToCt ? '' : `${task.sources.join('+')} -> ${task.target}: `}${nz} slices of ${nx}x${ny}, ${resampled ? `resampled to the model's ${size} px` : `at the model's native ${size} px`}, up to ${batch} per pass, ${steps} DDIM steps\n`,
      );
      const t0 = Date.now();
      const threads = numFlag(v, 'threads', 1, 256, defaultThreads(info.tfjsBackend));
      const common = {
        size,
        prediction: (metadata.prediction as PredictionType) ?? 'v',
        schedule: (metadata.schedule as ScheduleName) ?? 'cosine',
        steps,
        samples,
        batch,
        seed: numFlag(v, 'seed', 0, 2 ** 31 - 1, 0),
        threads,
        onStep: (d: number, t: number) => {
          total = t;
          bar ??= createProgress(`synthesizing ${nz} slices`, t);
          bar.tick(d);
        },
      };
      let spread: Float32Array | undefined;
      let plan: { threads: number; batchSize: number };
      let write: () => Promise<void>;
      if (sources) {
        const unit = await synthesizeTask(model, sources.normalized, task, common);
        plan = passPlan(nz, samples, threads, batch);
        write = () => writeTaskOutput(resolve(String(v.out)), task, unit, ref);
      } else {
        const r = await synthesizeVolume(model, ref, { ...common, mask });
        plan = { threads: r.threads, batchSize: r.batchSize };
        spread = r.spread;
        write = () => writeNifti(resolve(String(v.out)), { ...ref, data: r.ct }, { datatype: 'int16' });
      }
      bar?.done();
      const seconds = (Date.now() - t0) / 1000;
      const used = plan.threads;
      process.stderr.write(
        `synthesized ${nz} slices in ${seconds.toFixed(1)} s (${used} thread${used > 1 ? 's' : ''}, ${plan.batchSize} slices per pass)\n`,
      );
      await write();
      if (v.uncertainty && spread)
        await writeNifti(resolve(String(v.uncertainty)), { ...ref, data: spread }, { datatype: 'float32' });
      process.stdout.write(
        `${JSON.stringify({
          out: resolve(String(v.out)),
          ...(mriToCt ? {} : { task: formatTask(task) }),
          slices: nz,
          steps,
          samples,
          modelSteps: total,
          batch: plan.batchSize,
          threads: used,
          resampled,
          seconds: Number(seconds.toFixed(1)),
          secondsPerSlice: Number((seconds / nz).toFixed(3)),
        })}\n`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  });
}
