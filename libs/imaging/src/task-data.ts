import { computeBodyMask } from './body-mask';
import type { SlicePair } from './dataset';
import { ImagingError } from './errors';
import { resize2d, resizeNearest2d } from './filters';
import { normalizeFor } from './normalize';
import { type IntensityKind, kindOf, type Modality, type TaskSpec, taskModalities } from './task';
import { describeNonFinite, nonFiniteCount, valueStats } from './value-stats';
import type { Volume } from './volume';

/** One subject of a site for a task: a volume per modality (and a mask, when the site has one). */
export interface TaskSubject {
  id: string;
  volumes: Partial<Record<Modality, Volume>>;
  /** Where each volume came from, for messages. */
  origins: Partial<Record<Modality, string>>;
  mask?: Volume;
  /** Activity (Bq/mL) -> SUV, when the subject has PET. */
  suvFactor?: number;
}

/** A subject ready for slicing: every modality of the task on the model's scale, and the body mask. */
export interface NormalizedSubject {
  id: string;
  dims: [number, number, number];
  /** The task's sources in order, each in [-1, 1]. */
  sources: Float32Array[];
  target: Float32Array;
  mask: Uint8Array;
}

/**
 * The body mask of a subject without a mask file: CT above -500 HU where the task has CT (the
 * target's first), else Otsu's threshold on the first MR volume (target, then sources), else on PET.
 */
export function taskBodyMask(s: TaskSubject, task: TaskSpec): Uint8Array {
  const all = [task.target, ...task.sources];
  const pick = (k: IntensityKind) => all.find((m) => kindOf(m) === k && s.volumes[m]);
  const ct = pick('ct');
  if (ct) return computeBodyMask(s.volumes[ct]!.data, s.volumes[ct]!.dims, -500);
  const other = pick('mr') ?? pick('pet');
  if (!other) throw new ImagingError('DATASET_PROBLEM', `subject ${s.id}: no volume to find the body in`);
  return computeBodyMask(s.volumes[other]!.data, s.volumes[other]!.dims);
}

/**
 * Checks that a subject has every modality of the task on one grid with finite values, and
 * normalizes each by its kind (CT: HU window; MR, sources and target alike: inside the body by the
 * task's MR scale, percentiles or landmarks; PET: SUV, log scale). Errors name the subject, the
 * modality and the file.
 */
export function normalizeTaskSubject(s: TaskSubject, task: TaskSpec): NormalizedSubject {
  const need = taskModalities(task);
  const missing = need.filter((m) => !s.volumes[m]);
  if (missing.length > 0)
    throw new ImagingError(
      'DATASET_PROBLEM',
      `subject ${s.id} has no ${missing.join(', ')} (the task needs ${need.join(', ')})`,
    );
  const ref = s.volumes[need[0]]!;
  for (const m of need) {
    const v = s.volumes[m]!;
    const where = s.origins[m] ?? m;
    const stats = valueStats(v.data);
    if (nonFiniteCount(stats) > 0)
      throw new ImagingError(
        'NON_FINITE_VOXELS',
        `subject ${s.id}: ${m} ${where}: ${describeNonFinite(stats)}; training cannot use it`,
        where,
      );
    if (v.dims.some((d, i) => d !== ref.dims[i]))
      throw new ImagingError(
        'SHAPE_MISMATCH',
        `subject ${s.id}: ${m} ${where} is ${v.dims.join('x')} but ${need[0]} ${s.origins[need[0]] ?? ''} is ${ref.dims.join('x')}`,
        where,
      );
  }
  if (s.mask?.dims.some((d, i) => d !== ref.dims[i]))
    throw new ImagingError(
      'SHAPE_MISMATCH',
      `subject ${s.id}: the mask is ${s.mask.dims.join('x')} but ${need[0]} is ${ref.dims.join('x')}`,
    );
  const mask = s.mask ? Uint8Array.from(s.mask.data, (v) => (v > 0 ? 1 : 0)) : taskBodyMask(s, task);
  const norm = (m: Modality) => {
    if (kindOf(m) === 'pet' && s.suvFactor === undefined)
      throw new ImagingError(
        'DATASET_PROBLEM',
        `subject ${s.id}: PET ${s.origins[m] ?? ''} has no patient weight and injected dose (a pet.json sidecar or the DICOM header) to convert it to SUV`,
      );
    try {
      return normalizeFor(kindOf(m), s.volumes[m]!.data, {
        mask,
        suvFactor: s.suvFactor,
        mrScale: task.mrScale,
      });
    } catch (err) {
      if (!(err instanceof ImagingError)) throw err;
      const where = s.origins[m] ?? m;
      throw new ImagingError(err.code, `subject ${s.id}: ${m} ${where}: ${err.message}`, where);
    }
  };
  return {
    id: s.id,
    dims: [ref.dims[0], ref.dims[1], ref.dims[2]],
    sources: task.sources.map(norm),
    target: norm(task.target),
    mask,
  };
}

/** Pads a slice to a square (with `fill`) and resamples it to size x size. */
function toSquare(img: Float32Array, nx: number, ny: number, size: number, fill: number): Float32Array {
  const m = Math.max(nx, ny);
  let sq = img;
  if (nx !== ny) {
    sq = new Float32Array(m * m).fill(fill);
    const ox = (m - nx) >> 1;
    const oy = (m - ny) >> 1;
    for (let y = 0; y < ny; y++) sq.set(img.subarray(y * nx, (y + 1) * nx), (y + oy) * m + ox);
  }
  return m === size ? sq : resize2d(sq, m, m, size, size);
}

/**
 * The condition channels of slice z, channel last: for each source, slices z, z-1, z+1, ..., z-k,
 * z+k (clamped at the volume's ends), each padded to square and resampled to size x size.
 */
export function conditionOf(s: NormalizedSubject, z: number, context: number, size: number): Float32Array {
  const [nx, ny, nz] = s.dims;
  const plane = nx * ny;
  const zs = [z];
  for (let d = 1; d <= context; d++) zs.push(Math.max(0, z - d), Math.min(nz - 1, z + d));
  const channels = s.sources.length * zs.length;
  const out = new Float32Array(size * size * channels);
  let c = 0;
  for (const src of s.sources) {
    for (const zz of zs) {
      const img = toSquare(src.subarray(zz * plane, (zz + 1) * plane), nx, ny, size, -1);
      for (let i = 0; i < size * size; i++) out[i * channels + c] = img[i];
      c++;
    }
  }
  return out;
}

/** A training slice with its condition channels counted. */
export type TaskSlice = SlicePair & { channels: number };

/**
 * The axial slices of a normalized subject with at least `minBodyFraction` of their pixels in the
 * body, as model inputs: condition channels (conditionOf) and the target, size x size.
 */
export function taskSlicesOf(
  s: NormalizedSubject,
  task: TaskSpec,
  opts: { size: number; minBodyFraction?: number },
): TaskSlice[] {
  const { size } = opts;
  if (!Number.isInteger(size) || size < 8)
    throw new ImagingError('INVALID_ARGUMENT', `size must be an integer >= 8, got ${size}`);
  const minFrac = opts.minBodyFraction ?? 0.1;
  const [nx, ny, nz] = s.dims;
  const plane = nx * ny;
  const channels = s.sources.length * (2 * task.context + 1);
  const out: TaskSlice[] = [];
  for (let z = 0; z < nz; z++) {
    const m = s.mask.subarray(z * plane, (z + 1) * plane);
    let body = 0;
    for (let i = 0; i < plane; i++) body += m[i];
    if (body / plane < minFrac) continue;
    const m2 = Math.max(nx, ny);
    let maskSq = m;
    if (nx !== ny) {
      maskSq = new Uint8Array(m2 * m2);
      const ox = (m2 - nx) >> 1;
      const oy = (m2 - ny) >> 1;
      for (let y = 0; y < ny; y++) maskSq.set(m.subarray(y * nx, (y + 1) * nx), (y + oy) * m2 + ox);
    }
    out.push({
      subjectId: s.id,
      sliceIndex: z,
      size,
      channels,
      source: conditionOf(s, z, task.context, size),
      target: toSquare(s.target.subarray(z * plane, (z + 1) * plane), nx, ny, size, -1),
      mask: m2 === size ? Uint8Array.from(maskSq) : resizeNearest2d(maskSq, m2, m2, size, size),
    });
  }
  return out;
}
