import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { computeBodyMask } from './body-mask';
import { ImagingError } from './errors';
import { readImage } from './image-read';
import { huToUnit, normalizeMr } from './normalize';
import { findSubjectDirs } from './subject-files';
import { DEFAULT_TASK } from './task';
import { taskSlicesOf } from './task-data';
import { describeNonFinite, nonFiniteCount, valueStats } from './value-stats';
import type { Volume } from './volume';

/** File names of the modalities in a subject folder (without extension); SynthRAD2023 defaults. */
export interface ModalityNames {
  source?: string;
  target?: string;
  mask?: string;
}

/** One subject of a dataset folder. */
export interface SubjectEntry {
  id: string;
  sourcePath: string;
  targetPath: string;
  maskPath?: string;
}

export { readImage };

const EXTENSIONS = ['.nii.gz', '.nii', '.png'];

async function findModality(dir: string, name: string): Promise<string | undefined> {
  for (const ext of EXTENSIONS) {
    const p = join(dir, name + ext);
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      // try the next extension
    }
  }
  return undefined;
}

/**
 * Subjects of a SynthRAD2023-layout folder: `<dir>/<subject>/<source>.nii.gz`, `<target>.nii.gz`
 * and optionally `<mask>.nii.gz` (names configurable, so PET->MRI or T1->T2 work the same way).
 * Folders missing the source or target are left out and returned in `incomplete`.
 */
export async function scanSubjects(
  dir: string,
  names: ModalityNames = {},
): Promise<{ subjects: SubjectEntry[]; incomplete: { id: string; missing: string[] }[] }> {
  const source = names.source ?? 'mr';
  const target = names.target ?? 'ct';
  const maskName = names.mask ?? 'mask';
  // Subject folders, symbolic links to folders included (a site pointing at an existing archive).
  const { dirs } = await findSubjectDirs(dir);
  const subjects: SubjectEntry[] = [];
  const incomplete: { id: string; missing: string[] }[] = [];
  for (const e of [...dirs].sort((a, b) => a.id.localeCompare(b.id))) {
    const sub = e.path;
    const [s, t, m] = await Promise.all([
      findModality(sub, source),
      findModality(sub, target),
      findModality(sub, maskName),
    ]);
    if (!s || !t) {
      incomplete.push({
        id: e.id,
        missing: [!s ? source : null, !t ? target : null].filter((x): x is string => x !== null),
      });
      continue;
    }
    subjects.push({ id: e.id, sourcePath: s, targetPath: t, ...(m ? { maskPath: m } : {}) });
  }
  return { subjects, incomplete };
}

/** The complete subjects of a dataset folder (see scanSubjects). */
export async function listSubjects(dir: string, names: ModalityNames = {}): Promise<SubjectEntry[]> {
  return (await scanSubjects(dir, names)).subjects;
}

/**
 * Deterministic train/validation split by subject id: subjects are ordered by sha256(seed:id) and
 * the first round(valFraction * n) (at least one when n >= 2 and valFraction > 0) go to validation.
 * The same ids and seed always give the same split, on every site.
 */
export function splitSubjects(
  ids: readonly string[],
  valFraction: number,
  seed = 0,
): { train: string[]; val: string[] } {
  if (!(valFraction >= 0 && valFraction < 1))
    throw new ImagingError('INVALID_ARGUMENT', `valFraction must be in [0, 1), got ${valFraction}`);
  const keyed = ids.map((id) => ({ id, k: createHash('sha256').update(`${seed}:${id}`).digest('hex') }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  let nVal = Math.round(valFraction * ids.length);
  if (nVal === 0 && valFraction > 0 && ids.length >= 2) nVal = 1;
  const val = new Set(keyed.slice(0, nVal).map((e) => e.id));
  return { train: ids.filter((id) => !val.has(id)), val: ids.filter((id) => val.has(id)) };
}

/** One axial slice of a subject, ready for the model. */
export interface SlicePair {
  subjectId: string;
  sliceIndex: number;
  size: number;
  /**
   * Condition image(s) normalized to [-1, 1], size*size*channels, channel last: index
   * (x + size * y) * channels + c (one channel, the MRI, for MRI -> CT).
   */
  source: Float32Array;
  /** Condition channels (source modalities times 2.5D neighbours); absent means 1. */
  channels?: number;
  /** Target image (CT) clipped to [-1024, 3000] HU and mapped to [-1, 1]. */
  target: Float32Array;
  /** Body mask (1 inside). */
  mask: Uint8Array;
}

/** A loaded subject: its three volumes with source and target normalized. */
export interface LoadedSubject {
  id: string;
  source: Volume;
  target: Volume;
  mask: Uint8Array;
  sourceUnit: Float32Array;
  targetUnit: Float32Array;
}

/**
 * Throws when a volume holds NaN or infinite voxels: normalization and the loss would turn them
 * into NaN weights, and training would diverge without saying why.
 */
function refuseNonFinite(path: string, v: Volume): void {
  const stats = valueStats(v.data);
  if (nonFiniteCount(stats) > 0)
    throw new ImagingError(
      'NON_FINITE_VOXELS',
      `${path}: ${describeNonFinite(stats)}; training cannot use it (run 'fedsynth-data check' on the dataset folder for every problem)`,
      path,
    );
}

/**
 * Reads a subject's volumes (NIfTI, or PNG pairs for 2D datasets), checks they share a grid and
 * hold only finite values, and normalizes them: MR by its percentiles (normalizeMr), the scale of
 * the task mr-to-ct; a task with another MR scale is read by readTaskSubject and normalizeTaskSubject.
 */
export async function loadSubject(entry: SubjectEntry): Promise<LoadedSubject> {
  const [source, target, maskVol] = await Promise.all([
    readImage(entry.sourcePath, false),
    readImage(entry.targetPath, true),
    entry.maskPath ? readImage(entry.maskPath, false) : Promise.resolve(undefined),
  ]);
  refuseNonFinite(entry.sourcePath, source);
  refuseNonFinite(entry.targetPath, target);
  if (maskVol && entry.maskPath) refuseNonFinite(entry.maskPath, maskVol);
  for (const [name, path, v] of [
    ['target', entry.targetPath, target],
    ['mask', entry.maskPath, maskVol],
  ] as const) {
    if (v?.dims.some((d, i) => d !== source.dims[i])) {
      throw new ImagingError(
        'SHAPE_MISMATCH',
        `subject ${entry.id}: ${name} ${path} is ${v.dims.join('x')} but the source ${entry.sourcePath} is ${source.dims.join('x')}`,
        path,
      );
    }
  }
  const mask = maskVol
    ? Uint8Array.from(maskVol.data, (v) => (v > 0 ? 1 : 0))
    : computeBodyMask(target.data, target.dims, -500);
  return {
    id: entry.id,
    source,
    target,
    mask,
    sourceUnit: normalizeMr(source.data, mask).data,
    targetUnit: huToUnit(target.data),
  };
}

/**
 * The axial slices of a subject with at least `minBodyFraction` of their pixels in the body,
 * resampled to size x size (non-square slices are padded to square first).
 */
export async function loadSlicePairs(
  entry: SubjectEntry,
  opts: { size: number; minBodyFraction?: number },
): Promise<SlicePair[]> {
  return slicePairsOf(await loadSubject(entry), opts);
}

/** Slices of an already loaded subject (see loadSlicePairs): MRI -> CT as a task of one source. */
export function slicePairsOf(
  s: LoadedSubject,
  opts: { size: number; minBodyFraction?: number },
): SlicePair[] {
  const [nx, ny, nz] = s.source.dims;
  return taskSlicesOf(
    { id: s.id, dims: [nx, ny, nz], sources: [s.sourceUnit], target: s.targetUnit, mask: s.mask },
    DEFAULT_TASK,
    opts,
  );
}
