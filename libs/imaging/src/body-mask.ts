import { quantile } from './quantile';

/**
 * A body mask when none is given: threshold (Otsu's split between background and the body's
 * intensities, on a 3x3 in-plane mean so that MRI noise and thin dark structures such as the skull
 * do not break the outline), keep the largest 3D connected component (6-neighbour), and fill holes
 * slice by slice (background not connected to the slice border). An explicit threshold applies to
 * the data as given.
 */
export function computeBodyMask(
  data: Float32Array,
  dims: readonly [number, number, number],
  threshold?: number,
): Uint8Array {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const values = threshold === undefined ? mean3x3(data, nx, ny, nz) : data;
  const t = threshold ?? otsu(values);
  const fg = new Uint8Array(n);
  for (let i = 0; i < n; i++) fg[i] = values[i] > t ? 1 : 0;
  // Largest connected component.
  const comp = new Int32Array(n).fill(-1);
  const stack = new Int32Array(n);
  let best = -1;
  let bestSize = 0;
  let id = 0;
  for (let s = 0; s < n; s++) {
    if (!fg[s] || comp[s] >= 0) continue;
    let top = 0;
    stack[top++] = s;
    comp[s] = id;
    let size = 0;
    while (top > 0) {
      const i = stack[--top];
      size++;
      const x = i % nx;
      const y = Math.floor(i / nx) % ny;
      const z = Math.floor(i / (nx * ny));
      const nb = [
        x > 0 ? i - 1 : -1,
        x < nx - 1 ? i + 1 : -1,
        y > 0 ? i - nx : -1,
        y < ny - 1 ? i + nx : -1,
        z > 0 ? i - nx * ny : -1,
        z < nz - 1 ? i + nx * ny : -1,
      ];
      for (const j of nb) {
        if (j >= 0 && fg[j] && comp[j] < 0) {
          comp[j] = id;
          stack[top++] = j;
        }
      }
    }
    if (size > bestSize) {
      bestSize = size;
      best = id;
    }
    id++;
  }
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = comp[i] === best ? 1 : 0;
  // Hole filling per axial slice: flood the background from the border; the rest is body.
  const plane = nx * ny;
  const outside = new Uint8Array(plane);
  const q = new Int32Array(plane);
  for (let z = 0; z < nz; z++) {
    const off = z * plane;
    outside.fill(0);
    let head = 0;
    let tail = 0;
    const push = (p: number) => {
      if (!outside[p] && !mask[off + p]) {
        outside[p] = 1;
        q[tail++] = p;
      }
    };
    for (let x = 0; x < nx; x++) {
      push(x);
      push((ny - 1) * nx + x);
    }
    for (let y = 0; y < ny; y++) {
      push(y * nx);
      push(y * nx + nx - 1);
    }
    while (head < tail) {
      const p = q[head++];
      const x = p % nx;
      const y = Math.floor(p / nx);
      if (x > 0) push(p - 1);
      if (x < nx - 1) push(p + 1);
      if (y > 0) push(p - nx);
      if (y < ny - 1) push(p + nx);
    }
    for (let p = 0; p < plane; p++) if (!outside[p]) mask[off + p] = 1;
  }
  return mask;
}

/** Mean over each voxel's 3x3 in-plane neighbourhood (clipped at the edges). */
function mean3x3(data: Float32Array, nx: number, ny: number, nz: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let z = 0; z < nz; z++) {
    const off = z * nx * ny;
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        let sum = 0;
        let count = 0;
        for (let yy = Math.max(0, y - 1); yy <= Math.min(ny - 1, y + 1); yy++) {
          for (let xx = Math.max(0, x - 1); xx <= Math.min(nx - 1, x + 1); xx++) {
            sum += data[off + yy * nx + xx];
            count++;
          }
        }
        out[off + y * nx + x] = sum / count;
      }
    }
  }
  return out;
}

/** Otsu's threshold over a 256-bin histogram between the 1st and 99th percentile. */
export function otsu(data: Float32Array): number {
  const lo = quantile(data, 0.01);
  const hi = quantile(data, 0.99);
  if (!(hi > lo)) return lo;
  const bins = 256;
  const hist = new Float64Array(bins);
  for (const v of data) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * bins)));
    hist[b]++;
  }
  let total = 0;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) {
    total += hist[b];
    sumAll += b * hist[b];
  }
  let wB = 0;
  let sumB = 0;
  let bestVar = -1;
  let bestB = 0;
  for (let b = 0; b < bins; b++) {
    wB += hist[b];
    if (wB === 0) continue;
    const wF = total - wB;
    if (wF === 0) break;
    sumB += b * hist[b];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const v = wB * wF * (mB - mF) * (mB - mF);
    if (v > bestVar) {
      bestVar = v;
      bestB = b;
    }
  }
  return lo + ((bestB + 1) / bins) * (hi - lo);
}
