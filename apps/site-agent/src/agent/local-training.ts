import type { BackendName, NamedArray } from '@fedsynth/diffusion';
import {
  findModality,
  findSubjectDirs,
  formatTask,
  kindOf,
  listSubjects,
  MODALITIES,
  type Modality,
  type ModalityMatch,
  memorizationFigures,
  type SlicePair,
  type TaskSpec,
  taskModalities,
  validateTask,
} from '@fedsynth/imaging';
import { type Message, nextControl } from '@fedsynth/protocol';

type TrainingPlan = Message<'round.start'>['plan'];

/** Limits the site sets on what a round may ask of it. */
export interface SiteLimits {
  maxLocalSteps: number;
  maxBatch: number;
  /** Data-parallel training threads (default: defaultThreads of the backend). */
  trainingThreads?: number;
  /** Tensor memory per training thread in MiB (default: planned). */
  memoryMb?: number;
}

/** Local data of a site at one model size: training and validation slices, split by subject. */
export interface LocalData {
  size: number;
  task: TaskSpec;
  train: SlicePair[];
  val: SlicePair[];
  trainSubjects: number;
  valSubjects: number;
}

/** What local training produced: the update and the aggregate figures reported for it. */
export interface LocalUpdate {
  delta: Float32Array;
  loss: number;
  steps: number;
  batchSize: number;
  ms: number;
  /** Threads that trained, and slices per pass in each (micro-batches when fewer than its share). */
  threads: number;
  microBatch: number;
  checkpointing: boolean;
  /** With plan.keepOptimizer: the optimizer's state after this round, for the next one. */
  optimizer?: OptimizerCarry;
  /** With plan.keepOptimizer and a kept state that did not fit this model: why it was not used. */
  optimizerRestart?: string;
  /** With opts.scaffold: the site's new control variate (canonical order, unscaled). */
  control?: Float32Array;
  /** With opts.scaffold and a kept control variate that did not fit this model: why it was not used. */
  controlRestart?: string;
}

/**
 * SCAFFOLD's control variates for one round (libs/protocol/src/scaffold.ts), canonical order: the
 * federation's `c` (null: zero, before its first SCAFFOLD round) and the site's own `ci` (null:
 * none kept, e.g. after a restart; the round then runs uncorrected, ci = c).
 */
export interface ControlVariates {
  c: Float32Array | null;
  ci: Float32Array | null;
}

/**
 * A site's optimizer state carried from one round to the next (plan.keepOptimizer): Adam's first
 * and second moments per parameter and its step count. It never leaves the site.
 */
export interface OptimizerCarry {
  /** Trainer.exportState's arrays without the moving average (`adam.m/`, `adam.v/`, `step`). */
  arrays: NamedArray[];
}

/**
 * Why `carry` cannot continue on a model with these parameters (null when it can): the state of
 * another model layout is not used.
 */
export function carryMismatch(carry: OptimizerCarry, params: Map<string, { size: number }>): string | null {
  // The model the state was made for: each parameter's first moment has its size.
  const layout = new Map(
    carry.arrays.filter((a) => a.name.startsWith('adam.m/')).map((a) => [a.name.slice(7), a.data.length]),
  );
  if (layout.size !== params.size)
    return `the kept optimizer state has ${layout.size} tensors, the model ${params.size}`;
  for (const [name, p] of params) {
    const n = layout.get(name);
    if (n === undefined) return `the kept optimizer state has no ${name}`;
    if (n !== p.size) return `the kept optimizer state's ${name} has ${n} values, the model's ${p.size}`;
  }
  return null;
}

/** Figures of a model on the validation split (mean over slices, weighted by body voxels). */
export interface LocalEval {
  mae: number;
  psnr: number;
  ssim: number;
  count: number;
  /** Memorization check: mean RMS distance to the nearest training slice, synthetic and real. */
  nearestSynth?: number;
  nearestReal?: number;
}

/** At most this many training slices are searched for the nearest one (evenly spaced). */
const NEAREST_SEARCH = 2000;

type Diffusion = typeof import('@fedsynth/diffusion');
let diffusion: Diffusion | null = null;
/** libs/diffusion (and tfjs) load on first use, so commands that never train start fast. */
export function loadDiffusion(): Diffusion {
  diffusion ??= require('@fedsynth/diffusion') as Diffusion;
  return diffusion;
}

/** The task of a round start, checked (modalities this agent knows, a valid 2.5D context). */
export function taskOf(start: { task: { sources: string[]; target: string; context: number } }): TaskSpec {
  return validateTask(start.task);
}

/** The task the platform started with, read from SynthRAD-layout names (source/target/mask). */
const isMriToCt = (t: TaskSpec) =>
  t.sources.length === 1 &&
  t.sources[0] === 'mr' &&
  t.target === 'ct' &&
  t.context === 0 &&
  (t.mrScale ?? 'percentile') === 'percentile';

/** Loads (once per model size and task) the site's slices from its data folder. */
export class DataCache {
  private readonly loaded = new Map<string, Promise<LocalData>>();
  private counts: Promise<Map<Modality, number>> | null = null;
  /** Subjects per modality, once inventory() has run. */
  known: Map<Modality, number> | null = null;

  constructor(
    readonly dataDir: string,
    private readonly names: { source: string; target: string; mask: string },
    private readonly match: ModalityMatch = {},
  ) {}

  /** How the site's files are recognized: the configured names, SynthRAD's source/target names. */
  private matchFor(): ModalityMatch {
    return {
      ...this.match,
      names: { mr: [this.names.source], ct: [this.names.target], ...this.match.names },
    };
  }

  /**
   * Subjects in the data folder (what the agent reports as its sample count): SynthRAD MRI/CT
   * subjects, or for a site of other modalities its subject folders.
   */
  async subjectCount(): Promise<number> {
    const pairs = (await listSubjects(this.dataDir, this.names)).length;
    return pairs > 0 ? pairs : (await findSubjectDirs(this.dataDir)).dirs.length;
  }

  /** How many subjects have each modality (files or DICOM series); scanned once. */
  inventory(): Promise<Map<Modality, number>> {
    this.counts ??= (async () => {
      const counts = new Map<Modality, number>(MODALITIES.map((m) => [m, 0]));
      const { dirs } = await findSubjectDirs(this.dataDir);
      for (const d of dirs)
        for (const m of MODALITIES) {
          try {
            if (await findModality(d.path, m, this.matchFor())) counts.set(m, counts.get(m)! + 1);
          } catch {
            // ambiguous series: the subject is reported when training reads it
          }
        }
      this.known = counts;
      return counts;
    })();
    this.counts.catch(() => {
      this.counts = null;
    });
    return this.counts;
  }

  /**
   * Why this site cannot train the task, from the inventory (null when it can, or when the
   * inventory has not been taken yet: training then says what is missing).
   */
  lacks(task: TaskSpec): string | null {
    if (!this.known) return null;
    const missing = taskModalities(task).filter((m) => (this.known!.get(m) ?? 0) === 0);
    if (missing.length === 0) return null;
    return `the site's data has no ${missing.join(', ')} (the task ${formatTask(task)} needs ${taskModalities(task).join(', ')})`;
  }

  get(size: number, task: TaskSpec): Promise<LocalData> {
    const key = `${size}|${formatTask(task)}`;
    let p = this.loaded.get(key);
    if (!p) {
      const d = loadDiffusion();
      const load = isMriToCt(task)
        ? d.loadSliceDataset(this.dataDir, {
            size,
            names: { source: this.names.source, target: this.names.target, mask: this.names.mask },
          })
        : d.loadTaskDataset(this.dataDir, task, { size, match: this.matchFor() });
      p = load.then((r) => ({
        size,
        task,
        train: r.train,
        val: r.val,
        trainSubjects: r.trainSubjects.length,
        valSubjects: r.valSubjects.length,
      }));
      p.catch(() => this.loaded.delete(key));
      this.loaded.set(key, p);
    }
    return p;
  }
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** The number of local steps and the batch size a plan gets at this site (the site's limits win). */
export function effectivePlan(plan: TrainingPlan, limits: SiteLimits): { steps: number; batch: number } {
  return {
    steps: Math.min(plan.localSteps, limits.maxLocalSteps),
    batch: Math.min(plan.batchSize, limits.maxBatch),
  };
}

/**
 * Trains the global model on local slices for the plan's steps and returns local - global in the
 * canonical flat order (tensors sorted by name, as the coordinator flattens the checkpoint). Every
 * step uses all the site's training threads (data-parallel, the same update as one thread) and
 * micro-batches where the memory planner says a thread's share does not fit at once. Yields to
 * the event loop between steps, so the connection stays alive while training runs.
 */
export async function trainLocally(opts: {
  checkpoint: Uint8Array;
  plan: TrainingPlan;
  limits: SiteLimits;
  data: LocalData;
  seed: number;
  backend: BackendName;
  /** With plan.keepOptimizer: the state the site's previous round of this federation ended with. */
  optimizer?: OptimizerCarry;
  /** SCAFFOLD: each local step is corrected by lr (ci - c), and the new ci is returned. */
  scaffold?: ControlVariates;
  onPlan?: (line: string) => void;
  onStep?: (step: number, total: number, loss: number) => void;
}): Promise<LocalUpdate> {
  const d = loadDiffusion();
  const t0 = Date.now();
  const { steps, batch } = effectivePlan(opts.plan, opts.limits);
  const { model, arrays: globalArrays } = d.decodeModel(opts.checkpoint, 'global model');
  let parallel: Awaited<ReturnType<typeof d.DataParallelTrainer.create>> | undefined;
  let shift: Awaited<ReturnType<typeof d.WeightShift.of>> | undefined;
  try {
    const threads = Math.max(1, Math.min(opts.limits.trainingThreads ?? d.defaultThreads(), batch));
    const memory = d.planTrainingRun({
      config: model.config,
      size: opts.data.size,
      batch,
      backend: opts.backend,
      threads,
      budgetBytes: opts.limits.memoryMb === undefined ? undefined : opts.limits.memoryMb * 2 ** 20,
    });
    opts.onPlan?.(`${threads} thread${threads > 1 ? 's' : ''}; ${d.describePlan(memory)}`);
    parallel = await d.DataParallelTrainer.create(
      model,
      {
        prediction: opts.plan.prediction,
        schedule: opts.plan.schedule,
        optimizer: { ...d.DEFAULT_OPTIMIZER, lr: opts.plan.lr },
        emaDecay: opts.plan.localEma ?? 0,
        fedProxMu: opts.plan.fedProxMu,
        seed: opts.seed,
      },
      { threads, backend: opts.backend, microBatch: memory.microBatch, checkpointing: memory.checkpointing },
    );
    if (opts.plan.fedProxMu > 0) parallel.trainer.setProxAnchor();
    let optimizerRestart: string | undefined;
    if (opts.plan.keepOptimizer && opts.optimizer) {
      optimizerRestart = carryMismatch(opts.optimizer, model.params) ?? undefined;
      if (!optimizerRestart) parallel.trainer.importState(opts.optimizer.arrays);
    }
    const base = d.flattenCanonical(globalArrays);
    let controls: { c: Float32Array; ci: Float32Array } | undefined;
    let controlRestart: string | undefined;
    if (opts.scaffold) {
      const c = opts.scaffold.c ?? new Float32Array(base.length);
      if (c.length !== base.length)
        throw new Error(`the global control variate has ${c.length} values; the model ${base.length}`);
      let ci = opts.scaffold.ci ?? c;
      if (ci.length !== base.length) {
        controlRestart = `the kept control variate has ${ci.length} values, the model ${base.length}`;
        ci = c;
      }
      controls = { c, ci };
      // The correction is the same every step: ci - c, as tensors in the model's layout.
      shift = await d.WeightShift.of(model, difference(ci, c));
    }
    const sampler = new d.BatchSampler(opts.data.train, batch, opts.seed);
    let lossSum = 0;
    const tail = Math.max(1, Math.ceil(steps / 4));
    for (let s = 0; s < steps; s++) {
      const r = await parallel.step(sampler.next());
      shift?.apply(opts.plan.lr);
      if (s >= steps - tail) lossSum += r.loss;
      opts.onStep?.(s + 1, steps, r.loss);
      await yieldToEventLoop();
    }
    // SCAFFOLD's control variate comes from where the steps themselves led, before any average.
    const control = controls
      ? nextControl(
          controls.ci,
          controls.c,
          difference(d.flattenCanonical(await model.toNamedArrays()), base),
          steps,
          opts.plan.lr,
        )
      : undefined;
    // With a local moving average, the site's update is the average's change.
    parallel.trainer.applyEma();
    const local = d.flattenCanonical(await model.toNamedArrays());
    if (local.length !== base.length)
      throw new Error(`trained model has ${local.length} values, the global model ${base.length}`);
    const delta = difference(local, base);
    const optimizer: OptimizerCarry | undefined = opts.plan.keepOptimizer
      ? { arrays: (await parallel.trainer.exportState()).filter((a) => !a.name.startsWith('ema/')) }
      : undefined;
    return {
      ...(control ? { control } : {}),
      ...(controlRestart ? { controlRestart } : {}),
      ...(optimizer ? { optimizer } : {}),
      ...(optimizerRestart ? { optimizerRestart } : {}),
      delta,
      loss: lossSum / tail,
      steps,
      batchSize: batch,
      ms: Date.now() - t0,
      threads,
      microBatch: memory.microBatch,
      checkpointing: memory.checkpointing,
    };
  } finally {
    shift?.dispose();
    await parallel?.dispose();
    model.dispose();
  }
}

/** a - b, element by element. */
function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < out.length; i++) out[i] = a[i] - b[i];
  return out;
}

/**
 * Scores a model on (up to `maxSlices` of) the validation split with a fixed-seed DDIM. The input
 * size, prediction and schedule come from the model's metadata (`fallback` where it has none).
 */
export async function evaluateLocally(opts: {
  checkpoint: Uint8Array;
  fallback?: Partial<Pick<TrainingPlan, 'prediction' | 'schedule' | 'size'>>;
  data: (size: number) => Promise<LocalData>;
  maxSlices?: number;
  steps?: number;
  /** Synthesis threads (default: defaultThreads of the backend). */
  threads?: number;
}): Promise<LocalEval> {
  const d = loadDiffusion();
  const { model, metadata } = d.decodeModel(opts.checkpoint, 'global model');
  try {
    const data = await opts.data(Number(metadata.size ?? opts.fallback?.size ?? 64));
    const slices = evenlySpaced(data.val, opts.maxSlices ?? 16);
    if (slices.length === 0) return { mae: 0, psnr: 0, ssim: 0, count: 0 };
    await yieldToEventLoop();
    const r = await d.evaluateSlicesParallel(model, slices, {
      threads: opts.threads ?? d.defaultThreads(),
      schedule: (metadata.schedule ?? opts.fallback?.schedule ?? 'cosine') as 'cosine',
      prediction: (metadata.prediction ?? opts.fallback?.prediction ?? 'sample') as 'sample',
      steps: opts.steps ?? 10,
      seed: 1234,
      targetKind: kindOf(data.task.target),
    });
    // The check runs here; only the two means leave the site.
    const train = evenlySpaced(data.train, NEAREST_SEARCH).map((s) => s.target);
    const near =
      train.length > 0
        ? memorizationFigures(
            r.images,
            slices.map((s) => s.target),
            train,
          )
        : null;
    return {
      mae: r.mae,
      psnr: r.psnr,
      ssim: r.ssim,
      count: r.slices,
      ...(near ? { nearestSynth: near.synthToTrain, nearestReal: near.realToTrain } : {}),
    };
  } finally {
    model.dispose();
  }
}

function evenlySpaced<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs;
  return Array.from({ length: n }, (_, i) => xs[Math.floor(((i + 0.5) * xs.length) / n)]);
}
