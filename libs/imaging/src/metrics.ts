import { ImagingError } from './errors';

/** The CT range the SynthRAD2023 protocol evaluates in: [-1024, 3000] HU, data range 4024. */
export const HU_RANGE: readonly [number, number] = [-1024, 3000];

/** Image-quality figures of a synthetic CT against the real one (HU), SynthRAD2023 protocol. */
export interface ImageMetrics {
  /** Mean absolute error inside the mask, HU. */
  mae: number;
  /** PSNR inside the mask on values clipped to [-1024, 3000], data range 4024, dB. */
  psnr: number;
  /** SSIM as scikit-image computes it (7-wide uniform window, K1 0.01, K2 0.03, sample covariance), averaged over the mask. */
  ssim: number;
  /** Pearson correlation inside the mask. */
  pearson: number;
  /** MAE inside the mask where the reference is bone (> 200 HU). */
  maeBone: number;
  /** MAE inside the mask where the reference is soft tissue ([-200, 200] HU). */
  maeSoftTissue: number;
  /** MAE inside the mask where the reference is air or lung (< -200 HU). */
  maeAir: number;
  /** Voxels inside the mask. */
  voxels: number;
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

const clip = (v: number) => (v < HU_RANGE[0] ? HU_RANGE[0] : v > HU_RANGE[1] ? HU_RANGE[1] : v);

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

/** PSNR inside the mask on clipped values with the fixed data range 4024. */
export function maskedPsnr(pred: Float32Array, ref: Float32Array, mask?: Uint8Array): number {
  let se = 0;
  let c = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask[i]) continue;
    const d = clip(ref[i]) - clip(pred[i]);
    se += d * d;
    c++;
  }
  const range = HU_RANGE[1] - HU_RANGE[0];
  return c ? 10 * Math.log10((range * range) / (se / c)) : Number.NaN;
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
 * SynthRAD2023 preparation: clip to [-1024, 3000], set voxels outside the mask to -1024, shift to
 * non-negative; the SSIM map is averaged after cropping 3 voxels at each border, over the mask
 * when one is given.
 */
export function maskedSsim(
  pred: Float32Array,
  ref: Float32Array,
  dims: readonly number[],
  mask?: Uint8Array,
): number {
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
  const lo = HU_RANGE[0];
  for (let i = 0; i < n; i++) {
    const inside = !mask || mask[i];
    x[i] = (inside ? clip(ref[i]) : lo) - lo;
    y[i] = (inside ? clip(pred[i]) : lo) - lo;
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
  const R = HU_RANGE[1] - HU_RANGE[0];
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

/**
 * All metrics of a synthetic CT (`pred`) against the reference CT (`ref`), both in HU, 2D (dims
 * [nx, ny] or [nx, ny, 1]) or 3D, optionally inside a body mask (non-zero = inside).
 */
export function computeMetrics(
  pred: Float32Array,
  ref: Float32Array,
  opts: { dims: readonly number[]; mask?: Uint8Array },
): ImageMetrics {
  const dims = opts.dims.length === 2 ? [opts.dims[0], opts.dims[1], 1] : [...opts.dims];
  check(pred, ref, dims, opts.mask);
  let voxels = 0;
  for (let i = 0; i < ref.length; i++) if (!opts.mask || opts.mask[i]) voxels++;
  return {
    mae: maskedMae(pred, ref, opts.mask),
    psnr: maskedPsnr(pred, ref, opts.mask),
    ssim: maskedSsim(pred, ref, dims, opts.mask),
    pearson: maskedPearson(pred, ref, opts.mask),
    maeBone: bandMae(pred, ref, opts.mask, 200, Infinity),
    maeSoftTissue: bandMae(pred, ref, opts.mask, -200, 200),
    maeAir: bandMae(pred, ref, opts.mask, -Infinity, -200),
    voxels,
  };
}
