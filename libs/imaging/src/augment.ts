import type { SlicePair } from './dataset';

/** Ranges of the random augmentations (defaults in brackets). */
export interface AugmentOptions {
  /** Probability of a left-right flip [0.5]. */
  flip?: number;
  /** Maximum rotation in degrees [8]. */
  rotateDeg?: number;
  /** Maximum relative scale change [0.08]. */
  scale?: number;
  /** Maximum relative intensity scale and shift of the source [0.1, 0.05]. */
  intensityScale?: number;
  intensityShift?: number;
}

function warp(img: Float32Array, size: number, m: number[], fill: number, nearest: boolean): Float32Array {
  const out = new Float32Array(size * size);
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = m[0] * (x - c) + m[1] * (y - c) + c;
      const v = m[2] * (x - c) + m[3] * (y - c) + c;
      let val = fill;
      if (nearest) {
        const ui = Math.round(u);
        const vi = Math.round(v);
        if (ui >= 0 && vi >= 0 && ui < size && vi < size) val = img[vi * size + ui];
      } else if (u >= 0 && v >= 0 && u <= size - 1 && v <= size - 1) {
        const u0 = Math.floor(u);
        const v0 = Math.floor(v);
        const u1 = Math.min(size - 1, u0 + 1);
        const v1 = Math.min(size - 1, v0 + 1);
        const tu = u - u0;
        const tv = v - v0;
        val =
          (img[v0 * size + u0] * (1 - tu) + img[v0 * size + u1] * tu) * (1 - tv) +
          (img[v1 * size + u0] * (1 - tu) + img[v1 * size + u1] * tu) * tv;
      }
      out[y * size + x] = val;
    }
  }
  return out;
}

/**
 * A randomly augmented copy of a slice pair, reproducible from `rng`: the same flip, rotation and
 * scaling for source, target and mask (bilinear for images, nearest for the mask), and an
 * intensity jitter of the source alone (the target keeps its HU meaning).
 */
export function augmentPair(pair: SlicePair, rng: () => number, opts: AugmentOptions = {}): SlicePair {
  const flip = rng() < (opts.flip ?? 0.5) ? -1 : 1;
  const a = ((rng() * 2 - 1) * (opts.rotateDeg ?? 8) * Math.PI) / 180;
  const s = 1 + (rng() * 2 - 1) * (opts.scale ?? 0.08);
  const gain = 1 + (rng() * 2 - 1) * (opts.intensityScale ?? 0.1);
  const shift = (rng() * 2 - 1) * (opts.intensityShift ?? 0.05);
  // Inverse map from output to input coordinates.
  const cos = Math.cos(a) / s;
  const sin = Math.sin(a) / s;
  const m = [flip * cos, -sin, flip * sin, cos];
  const size = pair.size;
  const source = warp(pair.source, size, m, -1, false);
  for (let i = 0; i < source.length; i++)
    source[i] = Math.max(-1, Math.min(1, (source[i] + 1) * gain - 1 + shift));
  const maskF = warp(Float32Array.from(pair.mask), size, m, 0, true);
  return {
    ...pair,
    source,
    target: warp(pair.target, size, m, -1, false),
    mask: Uint8Array.from(maskF, (v) => (v > 0.5 ? 1 : 0)),
  };
}
