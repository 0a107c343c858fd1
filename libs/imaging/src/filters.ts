/** Separable Gaussian blur of a volume (x fastest) with per-axis sigma in voxels; edges clamp. */
export function gaussianBlur3d(
  data: Float32Array,
  dims: readonly [number, number, number],
  sigma: readonly [number, number, number],
): Float32Array {
  let src = Float32Array.from(data);
  let dst = new Float32Array(data.length);
  const [nx, ny, nz] = dims;
  const strides = [1, nx, nx * ny];
  for (let axis = 0; axis < 3; axis++) {
    const s = sigma[axis];
    const L = dims[axis];
    if (!(s > 0) || L === 1) continue;
    const r = Math.max(1, Math.ceil(3 * s));
    const k = new Float32Array(2 * r + 1);
    let ks = 0;
    for (let i = -r; i <= r; i++) ks += k[i + r] = Math.exp((-i * i) / (2 * s * s));
    for (let i = 0; i < k.length; i++) k[i] /= ks;
    const st = strides[axis];
    const total = nx * ny * nz;
    for (let base = 0; base < total; base++) {
      const pos = Math.floor(base / st) % L;
      let acc = 0;
      for (let t = -r; t <= r; t++) {
        const p = Math.min(L - 1, Math.max(0, pos + t));
        acc += k[t + r] * src[base + (p - pos) * st];
      }
      dst[base] = acc;
    }
    [src, dst] = [dst, src];
  }
  return src;
}

/** Bilinear resampling of a 2D image (x fastest) to w x h, aligning pixel centres. */
export function resize2d(img: Float32Array, w0: number, h0: number, w: number, h: number): Float32Array {
  if (w0 === w && h0 === h) return Float32Array.from(img);
  const out = new Float32Array(w * h);
  const sx = w0 / w;
  const sy = h0 / h;
  for (let y = 0; y < h; y++) {
    const fy = Math.min(h0 - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(h0 - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(w0 - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(w0 - 1, x0 + 1);
      const tx = fx - x0;
      const a = img[y0 * w0 + x0] * (1 - tx) + img[y0 * w0 + x1] * tx;
      const b = img[y1 * w0 + x0] * (1 - tx) + img[y1 * w0 + x1] * tx;
      out[y * w + x] = a * (1 - ty) + b * ty;
    }
  }
  return out;
}

/** Nearest-neighbour resampling of a 2D label image (x fastest) to w x h. */
export function resizeNearest2d(img: Uint8Array, w0: number, h0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const yy = Math.min(h0 - 1, Math.floor(((y + 0.5) * h0) / h));
    for (let x = 0; x < w; x++)
      out[y * w + x] = img[yy * w0 + Math.min(w0 - 1, Math.floor(((x + 0.5) * w0) / w))];
  }
  return out;
}
