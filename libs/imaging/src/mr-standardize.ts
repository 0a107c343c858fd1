import { ImagingError } from './errors';
import { quantiles } from './quantile';

/**
 * How a task brings its MR volumes to the model's [-1, 1] scale (TaskSpec.mrScale):
 * - `percentile`: linear between the body's 0.5 % and 99.5 % percentiles (normalizeMr), the
 *   platform's original mapping and what a task without the setting means;
 * - `landmarks`: piecewise linear between eleven landmarks of the body's histogram onto a fixed
 *   standard scale (standardizeMr), which takes out more of the contrast differences between
 *   scanners.
 */
export const MR_SCALES = ['percentile', 'landmarks'] as const;
export type MrScale = (typeof MR_SCALES)[number];

/** The landmarks' percentiles of the body voxels: 0.5 %, the deciles 10 ... 90 %, 99.5 %. */
export const MR_LANDMARK_PERCENTILES: readonly number[] = [
  0.005, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.995,
];

/**
 * Where each landmark lands on the model's scale: the low one on -1, the high one on 1, the deciles
 * evenly in between (-0.8, -0.6, ..., 0.8).
 *
 * Nyúl and Udupa learn the standard scale from the training set's pooled landmarks; in a
 * federation no site may share its histograms, so the scale is fixed instead, the same at every
 * site and for every model. Even spacing is the one choice that favours no intensity band: each
 * tenth of the body's voxels gets the same share of [-1, 1], so the map is close to an equalization
 * of the body's histogram (the outer bands hold 9.5 % of the voxels, not 10 %), and a scanner
 * whose contrast differs by any increasing change of intensity (gain, gamma, TR/TE within one
 * weighting) lands its deciles on the same positions as every other scanner.
 */
export const MR_STANDARD_SCALE: readonly number[] = [-1, -0.8, -0.6, -0.4, -0.2, 0, 0.2, 0.4, 0.6, 0.8, 1];

/** The landmarks of a standardized MR volume, kept so that the mapping can be reported. */
export interface MrLandmarks {
  /** The first landmark, min(0, p0.5): mapped to -1, and everything below it too. */
  lo: number;
  /** The last landmark, p99.5: mapped to 1, and everything above it too. */
  hi: number;
  /** The intensities at MR_LANDMARK_PERCENTILES (the first replaced by `lo`), non-decreasing. */
  landmarks: number[];
}

/**
 * The landmarks of an MR volume: its intensities at MR_LANDMARK_PERCENTILES among the voxels
 * inside `mask` (all voxels without one), by linear interpolation between order statistics, the
 * lowest replaced by min(0, p0.5) as in normalizeMr, so that a background of zeros maps to -1 even
 * when the body has no voxel that dark. Throws when the mask selects no voxel.
 */
export function mrLandmarks(data: Float32Array, mask?: Uint8Array | Float32Array): MrLandmarks {
  const landmarks = quantiles(data, MR_LANDMARK_PERCENTILES, mask);
  if (Number.isNaN(landmarks[0]))
    throw new ImagingError('INVALID_ARGUMENT', 'the body mask selects no voxel to take MR landmarks from');
  landmarks[0] = Math.min(0, landmarks[0]);
  return { lo: landmarks[0], hi: landmarks[landmarks.length - 1], landmarks };
}

/**
 * MRI -> [-1, 1] by landmark standardization (Nyúl & Udupa, with a fixed standard scale, see
 * MR_STANDARD_SCALE): piecewise linear from each landmark (mrLandmarks) to its position on the
 * standard scale, values at or below `lo` -> -1, at or above `hi` -> 1.
 *
 * Landmarks may coincide (a volume of few distinct values, a constant one). The map stays
 * monotone non-decreasing and finite: a value strictly between two landmarks is interpolated
 * between the nearest distinct ones, and a value equal to several interior landmarks takes the
 * middle of their positions (the mid-rank, as rank statistics treat ties). A constant volume maps
 * as normalizeMr maps it: to 1 when positive, to -1 when zero or negative.
 */
export function standardizeMr(
  data: Float32Array,
  mask?: Uint8Array | Float32Array,
): { data: Float32Array; params: MrLandmarks } {
  const params = mrLandmarks(data, mask);
  const L = params.landmarks;
  const S = MR_STANDARD_SCALE;
  const last = L.length - 1;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x <= L[0]) {
      out[i] = -1;
      continue;
    }
    if (x >= L[last]) {
      out[i] = 1;
      continue;
    }
    // L[0] < x < L[last]: the first landmark not below x, L[j - 1] < x <= L[j].
    let j = 1;
    while (L[j] < x) j++;
    if (L[j] > x) {
      out[i] = S[j - 1] + ((S[j] - S[j - 1]) * (x - L[j - 1])) / (L[j] - L[j - 1]);
      continue;
    }
    let m = j;
    while (L[m + 1] === x) m++;
    out[i] = (S[j] + S[m]) / 2;
  }
  return { data: out, params };
}
