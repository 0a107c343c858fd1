import { ImagingError } from './errors';

/** The CT range the SynthRAD2023 protocol evaluates in: [-1024, 3000] HU, data range 4024. */
export const HU_RANGE: readonly [number, number] = [-1024, 3000];

/**
 * The range MR and PET targets are scored in: the model's [-1, 1] scale mapped by (u + 1) / 2,
 * data range 1.
 */
export const UNIT_RANGE: readonly [number, number] = [0, 1];

/**
 * Image-quality figures of a synthetic image against the real one, in the units of the range it
 * was scored in, with the SynthRAD2023 protocol.
 */
export interface IntensityMetrics {
  /** Mean absolute error inside the mask, on the values as given (no clipping). */
  mae: number;
  /** PSNR inside the mask on values clipped to the range, data range = its width, dB. */
  psnr: number;
  /**
   * SSIM as scikit-image computes it (7-wide uniform window, K1 0.01, K2 0.03, sample covariance,
   * data range = the range's width) on values clipped to the range with the outside of the mask
   * set to its minimum, averaged over the mask after cropping 3 voxels at each border.
   */
  ssim: number;
  /** Pearson correlation inside the mask. */
  pearson: number;
  /** Voxels inside the mask. */
  voxels: number;
}

/** Image-quality figures of a synthetic CT against the real one (HU), SynthRAD2023 protocol. */
export interface ImageMetrics extends IntensityMetrics {
  /** Mean absolute error inside the mask, HU. */
  mae: number;
  /** PSNR inside the mask on values clipped to [-1024, 3000], data range 4024, dB. */
  psnr: number;
  /** SSIM as scikit-image computes it (7-wide uniform window, K1 0.01, K2 0.03, sample covariance), averaged over the mask. */
  ssim: number;
  /** MAE inside the mask where the reference is bone (> 200 HU). */
  maeBone: number;
  /** MAE inside the mask where the reference is soft tissue ([-200, 200] HU). */
  maeSoftTissue: number;
  /** MAE inside the mask where the reference is air or lung (< -200 HU). */
  maeAir: number;
}

function check(pred: Float32Array, ref: Float32Array, dims: readonly number[], mask?: Uint8Array): void {
  const n = dims.reduce((a, b) => a * b, 1);
  if (pred.length !== n || ref.length !== n) {
    throw new ImagingError(
      'SHAPE_MISMATCH',
      `metrics: prediction (${pred.length}) and reference (${ref.length}) must both have ${n} voxels (${dims.join('x')})`,
    );
  }
  if (mask && mask.length !== n)
    throw new ImagingError('SHAPE_MISMATCH', `metrics: mask has ${mask.length} voxels, expected ${n}`);
}

function checkRange(range: readonly [number, number]): void {
  if (!(Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[1] > range[0]))
    throw new ImagingError('INVALID_ARGUMENT', `metrics: invalid intensity range [${range.join(', ')}]`);
}

const clipTo = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** MAE inside the mask (all voxels without one), no clipping, as SynthRAD2023 computes it. */
export function maskedMae(pred: Float32Array, ref: Float32Array, mask?: Uint8Array): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask[i]) continue;
    s += Math.abs(ref[i] - pred[i]);
    c++;
  }
  return c ? s / c : Number.NaN;
}

/**
 * PSNR inside the mask on values clipped to `range` with its width as the data range (CT's
 * [-1024, 3000] HU, data range 4024, unless told otherwise).
 */
export function maskedPsnr(
  pred: Float32Array,
  ref: Float32Array,
  mask?: Uint8Array,
  range: readonly [number, number] = HU_RANGE,
): number {
  checkRange(range);
  const [lo, hi] = range;
  let se = 0;
  let c = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask[i]) continue;
    const d = clipTo(ref[i], lo, hi) - clipTo(pred[i], lo, hi);
    se += d * d;
    c++;
  }
  const width = hi - lo;
  return c ? 10 * Math.log10((width * width) / (se / c)) : Number.NaN;
}

/**
 * Box mean of width `size` along one axis with scipy's 'reflect' boundary (d c b a | a b c d | d c b a),
 * as a running sum over whole rows/planes so memory is read sequentially.
 */
function boxAxis(
  src: Float64Array,
  dst: Float64Array,
  dims: readonly number[],
  axis: number,
  size: number,
): void {
  const L = dims[axis];
  let inner = 1;
  for (let k = 0; k < axis; k++) inner *= dims[k];
  let outer = 1;
  for (let k = axis + 1; k < dims.length; k++) outer *= dims[k];
  const r = (size - 1) >> 1;
  const refl = (l: number) => {
    let i = l;
    for (;;) {
      if (i < 0) i = -i - 1;
      else if (i >= L) i = 2 * L - i - 1;
      else return i;
    }
  };
  const acc = new Float64Array(inner);
  const inv = 1 / size;
  for (let o = 0; o < outer; o++) {
    const base = o * L * inner;
    acc.fill(0);
    for (let k = -r; k <= r; k++) {
      const row = base + refl(k) * inner;
      for (let i = 0; i < inner; i++) acc[i] += src[row + i];
    }
    for (let l = 0; l < L; l++) {
      const out = base + l * inner;
      for (let i = 0; i < inner; i++) dst[out + i] = acc[i] * inv;
      if (l + 1 < L) {
        const add = base + refl(l + r + 1) * inner;
        const sub = base + refl(l - r) * inner;
        for (let i = 0; i < inner; i++) acc[i] += src[add + i] - src[sub + i];
      }
    }
  }
}

function uniformFilter(
  img: Float64Array,
  dims: readonly number[],
  size: number,
  tmp: Float64Array,
): Float64Array {
  const out = new Float64Array(img.length);
  let a: Float64Array = img;
  dims.forEach((_, axis) => {
    const target = axis % 2 === (dims.length - 1) % 2 ? out : tmp;
    boxAxis(a, target, dims, axis, size);
    a = target;
  });
  return out;
}

/**
 * SSIM as scikit-image's `structural_similarity(gt, pred, data_range, win_size=7, K1=0.01, K2=0.03,
 * use_sample_covariance=True)` computes it on 2D (nz = 1) or 3D images given x-fastest, on the
 * SynthRAD2023 preparation: clip to `range` (CT's [-1024, 3000] HU unless told otherwise), set
 * voxels outside the mask to the range's minimum, shift to non-negative; data range = the range's
 * width; the SSIM map is averaged after cropping 3 voxels at each border, over the mask when one
 * is given.
 */
export function maskedSsim(
  pred: Float32Array,
  ref: Float32Array,
  dims: readonly number[],
  mask?: Uint8Array,
  range: readonly [number, number] = HU_RANGE,
): number {
  checkRange(range);
  const shape = dims.filter((d, i) => !(i === 2 && d === 1));
  const win = 7;
  for (const d of shape)
    if (d < win)
      throw new ImagingError(
        'INVALID_ARGUMENT',
        `ssim: every dimension must be >= ${win}, got ${dims.join('x')}`,
      );
  const n = ref.length;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  const [lo, hi] = range;
  for (let i = 0; i < n; i++) {
    const inside = !mask || mask[i];
    x[i] = (inside ? clipTo(ref[i], lo, hi) : lo) - lo;
    y[i] = (inside ? clipTo(pred[i], lo, hi) : lo) - lo;
  }
  const tmp = new Float64Array(n);
  const ux = uniformFilter(x, shape, win, tmp);
  const uy = uniformFilter(y, shape, win, tmp);
  const prod = new Float64Array(n);
  for (let i = 0; i < n; i++) prod[i] = x[i] * x[i];
  const uxx = uniformFilter(prod, shape, win, tmp);
  for (let i = 0; i < n; i++) prod[i] = y[i] * y[i];
  const uyy = uniformFilter(prod, shape, win, tmp);
  for (let i = 0; i < n; i++) prod[i] = x[i] * y[i];
  const uxy = uniformFilter(prod, shape, win, tmp);
  const np = win ** shape.length;
  const covNorm = np / (np - 1);
  const R = hi - lo;
  const C1 = (0.01 * R) ** 2;
  const C2 = (0.03 * R) ** 2;
  const pad = (win - 1) >> 1;
  const [nx, ny, nz] = [dims[0], dims[1], dims[2] ?? 1];
  const zlo = shape.length === 3 ? pad : 0;
  const zhi = shape.length === 3 ? nz - pad : 1;
  let sum = 0;
  let count = 0;
  for (let z = zlo; z < zhi; z++) {
    for (let yy = pad; yy < ny - pad; yy++) {
      let i = (z * ny + yy) * nx + pad;
      for (let xx = pad; xx < nx - pad; xx++, i++) {
        if (mask && !mask[i]) continue;
        const mx = ux[i];
        const my = uy[i];
        const vx = covNorm * (uxx[i] - mx * mx);
        const vy = covNorm * (uyy[i] - my * my);
        const vxy = covNorm * (uxy[i] - mx * my);
        sum += ((2 * mx * my + C1) * (2 * vxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
        count++;
      }
    }
  }
  return count ? sum / count : Number.NaN;
}

/** Pearson correlation inside the mask. */
export function maskedPearson(pred: Float32Array, ref: Float32Array, mask?: Uint8Array): number {
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask[i]) continue;
    sx += ref[i];
    sy += pred[i];
    n++;
  }
  if (n < 2) return Number.NaN;
  const mx = sx / n;
  const my = sy / n;
  let cxy = 0;
  let cxx = 0;
  let cyy = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask[i]) continue;
    const a = ref[i] - mx;
    const b = pred[i] - my;
    cxy += a * b;
    cxx += a * a;
    cyy += b * b;
  }
  return cxx > 0 && cyy > 0 ? cxy / Math.sqrt(cxx * cyy) : Number.NaN;
}

function bandMae(
  pred: Float32Array,
  ref: Float32Array,
  mask: Uint8Array | undefined,
  lo: number,
  hi: number,
): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < ref.length; i++) {
    if ((mask && !mask[i]) || !(ref[i] >= lo && ref[i] < hi)) continue;
    s += Math.abs(ref[i] - pred[i]);
    c++;
  }
  return c ? s / c : Number.NaN;
}

/** The figures every target gets (CT in HU, MR and PET normalized), scored in `range`. */
function scoreInRange(
  pred: Float32Array,
  ref: Float32Array,
  dimsIn: readonly number[],
  mask: Uint8Array | undefined,
  range: readonly [number, number],
): IntensityMetrics {
  const dims = dimsIn.length === 2 ? [dimsIn[0], dimsIn[1], 1] : [...dimsIn];
  check(pred, ref, dims, mask);
  let voxels = 0;
  for (let i = 0; i < ref.length; i++) if (!mask || mask[i]) voxels++;
  return {
    mae: maskedMae(pred, ref, mask),
    psnr: maskedPsnr(pred, ref, mask, range),
    ssim: maskedSsim(pred, ref, dims, mask, range),
    pearson: maskedPearson(pred, ref, mask),
    voxels,
  };
}

/**
 * All metrics of a synthetic CT (`pred`) against the reference CT (`ref`), both in HU, 2D (dims
 * [nx, ny] or [nx, ny, 1]) or 3D, optionally inside a body mask (non-zero = inside).
 */
export function computeMetrics(
  pred: Float32Array,
  ref: Float32Array,
  opts: { dims: readonly number[]; mask?: Uint8Array },
): ImageMetrics {
  const core = scoreInRange(pred, ref, opts.dims, opts.mask, HU_RANGE);
  return {
    ...core,
    maeBone: bandMae(pred, ref, opts.mask, 200, Infinity),
    maeSoftTissue: bandMae(pred, ref, opts.mask, -200, 200),
    maeAir: bandMae(pred, ref, opts.mask, -Infinity, -200),
  };
}

/**
 * The metrics of a synthetic MR or PET image against the reference, both normalized to [0, 1]
 * (the model's [-1, 1] scale mapped by (u + 1) / 2), with the same protocol as computeMetrics:
 * MAE inside the mask (no clipping), PSNR and SSIM on values clipped to [0, 1] with data range 1
 * (SSIM with the outside of the mask set to 0, averaged over the mask after cropping 3 voxels),
 * Pearson inside the mask. 2D (dims [nx, ny] or [nx, ny, 1]) or 3D, optionally inside a body mask
 * (non-zero = inside).
 */
export function computeIntensityMetrics(
  pred: Float32Array,
  ref: Float32Array,
  dims: readonly number[],
  mask?: Uint8Array,
): IntensityMetrics {
  return scoreInRange(pred, ref, dims, mask, UNIT_RANGE);
}
