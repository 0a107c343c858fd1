import { HU_RANGE } from './metrics';
import { type MrScale, standardizeMr } from './mr-standardize';
import { quantile } from './quantile';

/** CT in HU -> [-1, 1]: clip to [-1024, 3000], then map linearly. */
export function huToUnit(hu: Float32Array): Float32Array {
  const [lo, hi] = HU_RANGE;
  const out = new Float32Array(hu.length);
  for (let i = 0; i < hu.length; i++) {
    const v = hu[i] < lo ? lo : hu[i] > hi ? hi : hu[i];
    out[i] = ((v - lo) / (hi - lo)) * 2 - 1;
  }
  return out;
}

/** [-1, 1] -> HU, the exact inverse of huToUnit on [-1024, 3000] (values outside [-1, 1] are clipped). */
export function unitToHu(x: Float32Array): Float32Array {
  const [lo, hi] = HU_RANGE;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
    out[i] = ((v + 1) / 2) * (hi - lo) + lo;
  }
  return out;
}

/** Parameters of a per-volume MRI normalization, kept so the mapping can be reported or undone. */
export interface MrNormalization {
  lo: number;
  hi: number;
}

/**
 * MRI -> [-1, 1] per volume by robust percentiles (default 0.5 % and 99.5 % of the voxels inside
 * the body mask, or of all voxels): lo -> -1, hi -> 1, values beyond clipped.
 */
export function normalizeMr(
  data: Float32Array,
  mask?: Uint8Array | Float32Array,
  pLow = 0.005,
  pHigh = 0.995,
): { data: Float32Array; params: MrNormalization } {
  const lo = Math.min(0, quantile(data, pLow, mask));
  const hi = quantile(data, pHigh, mask);
  const span = hi - lo || 1;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = ((data[i] - lo) / span) * 2 - 1;
    out[i] = v < -1 ? -1 : v > 1 ? 1 : v;
  }
  return { data: out, params: { lo, hi } };
}

/** The SUV that maps to 1 on the PET scale (FDG uptake in tumours rarely exceeds it). */
export const SUV_MAX = 20;
const LOG_SUV_MAX = Math.log1p(SUV_MAX);

/** PET in SUV -> [-1, 1] on a log scale, log(1 + SUV) / log(1 + SUV_MAX), clipped. */
export function suvToUnit(suv: Float32Array): Float32Array {
  const out = new Float32Array(suv.length);
  for (let i = 0; i < suv.length; i++) {
    const v = Math.log1p(Math.max(0, suv[i])) / LOG_SUV_MAX;
    out[i] = (v > 1 ? 1 : v) * 2 - 1;
  }
  return out;
}

/** [-1, 1] -> SUV, the inverse of suvToUnit on [0, SUV_MAX]. */
export function unitToSuv(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
    out[i] = Math.expm1(((v + 1) / 2) * LOG_SUV_MAX);
  }
  return out;
}

/**
 * A volume of one intensity kind -> the model's [-1, 1] scale: CT by the HU window, MR inside
 * `mask` by the task's `mrScale` (robust percentiles, normalizeMr, by default; or landmarks,
 * standardizeMr), PET (activity in Bq/mL) times `suvFactor` to SUV, then log scale.
 */
export function normalizeFor(
  kind: 'ct' | 'mr' | 'pet',
  data: Float32Array,
  opts: { mask?: Uint8Array; suvFactor?: number; mrScale?: MrScale } = {},
): Float32Array {
  if (kind === 'ct') return huToUnit(data);
  if (kind === 'mr')
    return (opts.mrScale === 'landmarks' ? standardizeMr(data, opts.mask) : normalizeMr(data, opts.mask))
      .data;
  const f = opts.suvFactor;
  if (!(f !== undefined && Number.isFinite(f) && f > 0))
    throw new RangeError(
      'PET needs the factor from activity (Bq/mL) to SUV: the patient weight and injected dose',
    );
  const suv = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) suv[i] = data[i] * f;
  return suvToUnit(suv);
}

/**
 * The model's [-1, 1] scale -> what a reader of the output expects: HU for CT, SUV for PET, and for
 * MR the normalized intensity in [0, 1] (the input's absolute scale is not recoverable), on the
 * task's MR scale: percentile-normalized or landmark-standardized, as the target was in training.
 */
export function unitToNative(kind: 'ct' | 'mr' | 'pet', x: Float32Array): Float32Array {
  if (kind === 'ct') return unitToHu(x);
  if (kind === 'pet') return unitToSuv(x);
  return Float32Array.from(x, (v) => ((v < -1 ? -1 : v > 1 ? 1 : v) + 1) / 2);
}
