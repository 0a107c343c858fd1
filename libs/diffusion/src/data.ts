import {
  augmentPair,
  formatTask,
  listSubjects,
  loadSlicePairs,
  type ModalityMatch,
  type ModalityNames,
  normalizeTaskSubject,
  readTaskSubject,
  type SlicePair,
  scanTaskSubjects,
  splitSubjects,
  type TaskSpec,
  taskSlicesOf,
} from '@fedsynth/imaging';
import { seededUniform } from './rng';
import type { Batch } from './trainer';

/** Train and validation slices of a dataset folder, split by subject. */
export interface SliceDataset {
  train: SlicePair[];
  val: SlicePair[];
  trainSubjects: string[];
  valSubjects: string[];
}

/** Loads a SynthRAD-layout folder as slices of the model size, split by subject id (deterministic). */
export async function loadSliceDataset(
  dir: string,
  opts: {
    size: number;
    valFraction?: number;
    seed?: number;
    names?: ModalityNames;
    minBodyFraction?: number;
  },
): Promise<SliceDataset> {
  const subjects = await listSubjects(dir, opts.names);
  if (subjects.length === 0)
    throw new Error(
      `${dir}: no subjects found (expected <subject>/mr.nii.gz and ct.nii.gz); run 'fedsynth-data check ${dir}'`,
    );
  const split = splitSubjects(
    subjects.map((s) => s.id),
    opts.valFraction ?? 0.2,
    opts.seed ?? 0,
  );
  const valSet = new Set(split.val);
  const train: SlicePair[] = [];
  const val: SlicePair[] = [];
  for (const s of subjects) {
    const pairs = await loadSlicePairs(s, { size: opts.size, minBodyFraction: opts.minBodyFraction ?? 0.15 });
    (valSet.has(s.id) ? val : train).push(...pairs);
  }
  if (train.length === 0)
    throw new Error(`${dir}: no training slices with enough body in ${split.train.length} training subjects`);
  return { train, val, trainSubjects: split.train, valSubjects: split.val };
}

/**
 * Loads a site's data folder for a task (several source modalities, MR or PET targets, NIfTI or
 * DICOM series, symbolic links followed) as slices of the model size, split by subject id like
 * loadSliceDataset. Subjects missing a modality are left out and named in `skipped`; when none
 * is complete, the error says what is missing where.
 */
export async function loadTaskDataset(
  dir: string,
  task: TaskSpec,
  opts: {
    size: number;
    valFraction?: number;
    seed?: number;
    match?: ModalityMatch;
    minBodyFraction?: number;
  },
): Promise<SliceDataset & { skipped: string[] }> {
  const { subjects, problems } = await scanTaskSubjects(dir, task, opts.match);
  const complete = subjects.filter((s) => s.missing.length === 0);
  const skipped = [
    ...problems.map((p) => p.problem),
    ...subjects
      .filter((s) => s.missing.length > 0)
      .map((s) => s.problem ?? `${s.id}: no ${s.missing.join(', ')}`),
  ];
  if (complete.length === 0)
    throw new Error(
      `${dir}: no subject has every modality of the task ${formatTask(task)}${skipped.length ? ` (${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; ...' : ''})` : ''}; run 'fedsynth-data check ${dir} --task ${formatTask(task)}'`,
    );
  const split = splitSubjects(
    complete.map((s) => s.id),
    opts.valFraction ?? 0.2,
    opts.seed ?? 0,
  );
  const valSet = new Set(split.val);
  const train: SlicePair[] = [];
  const val: SlicePair[] = [];
  for (const s of complete) {
    const n = normalizeTaskSubject(await readTaskSubject(s, task), task);
    const slices = taskSlicesOf(n, task, { size: opts.size, minBodyFraction: opts.minBodyFraction ?? 0.15 });
    (valSet.has(s.id) ? val : train).push(...slices);
  }
  if (train.length === 0)
    throw new Error(`${dir}: no training slices with enough body in ${split.train.length} training subjects`);
  return { train, val, trainSubjects: split.train, valSubjects: split.val, skipped };
}

/** Endless seeded mini-batches of training slices, with augmentation. */
export class BatchSampler {
  private readonly rnd: () => number;

  constructor(
    private readonly slices: SlicePair[],
    private readonly batchSize: number,
    seed = 0,
    private readonly augment = true,
  ) {
    if (slices.length === 0) throw new Error('no slices to sample batches from');
    this.rnd = seededUniform(seed);
  }

  next(): Batch {
    const size = this.slices[0].size;
    const px = size * size;
    const ch = this.slices[0].channels ?? 1;
    const b = this.batchSize;
    const source = new Float32Array(b * px * ch);
    const target = new Float32Array(b * px);
    const mask = new Uint8Array(b * px);
    for (let i = 0; i < b; i++) {
      let p = this.slices[Math.floor(this.rnd() * this.slices.length)];
      if (this.augment) p = augmentPair(p, this.rnd);
      source.set(p.source, i * px * ch);
      target.set(p.target, i * px);
      mask.set(p.mask, i * px);
    }
    return { count: b, size, source, target, mask, channels: ch };
  }
}

/** Stacks slices into one batch (for validation). */
export function stackSlices(slices: SlicePair[]): Batch {
  const size = slices[0].size;
  const px = size * size;
  const ch = slices[0].channels ?? 1;
  const out: Batch = {
    count: slices.length,
    size,
    channels: ch,
    source: new Float32Array(slices.length * px * ch),
    target: new Float32Array(slices.length * px),
    mask: new Uint8Array(slices.length * px),
  };
  slices.forEach((s, i) => {
    out.source.set(s.source, i * px * ch);
    out.target.set(s.target, i * px);
    out.mask!.set(s.mask, i * px);
  });
  return out;
}
