import type { SlicePair } from './dataset';
import { lowerResolution } from './resolution';

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
  /**
   * Peak-to-peak amplitude of a smooth multiplicative bias field on the source, as an MR coil's
   * [0.2]: a random linear-plus-quadratic field exp(f(x, y)), f in [-a/2, a/2].
   */
  biasField?: number;
  /** Maximum log of the gamma (contrast) change of the source: gamma in [e^-g, e^g] [0.2]. */
  gamma?: number;
  /** Largest standard deviation of Gaussian noise added to the source, on its [-1, 1] scale [0.02]. */
  noise?: number;
  /** Probability that the source looks as a coarser acquisition would [0.25]. */
  lowRes?: number;
  /** Largest coarsening factor of such a source (uniform in [1, f]) [2.5]. */
  lowResFactor?: number;
}

/** A standard normal draw from `rng` (Box-Muller). */
function gaussian(rng: () => number): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

function warp(
  img: Float32Array,
  size: number,
  channels: number,
  m: number[],
  fill: number,
  nearest: boolean,
): Float32Array {
  const out = new Float32Array(size * size * channels);
  const c = (size - 1) / 2;
  const at = (x: number, y: number, ch: number) => img[(y * size + x) * channels + ch];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = m[0] * (x - c) + m[1] * (y - c) + c;
      const v = m[2] * (x - c) + m[3] * (y - c) + c;
      const o = (y * size + x) * channels;
      for (let ch = 0; ch < channels; ch++) {
        let val = fill;
        if (nearest) {
          const ui = Math.round(u);
          const vi = Math.round(v);
          if (ui >= 0 && vi >= 0 && ui < size && vi < size) val = at(ui, vi, ch);
        } else if (u >= 0 && v >= 0 && u <= size - 1 && v <= size - 1) {
          const u0 = Math.floor(u);
          const v0 = Math.floor(v);
          const u1 = Math.min(size - 1, u0 + 1);
          const v1 = Math.min(size - 1, v0 + 1);
          const tu = u - u0;
          const tv = v - v0;
          val =
            (at(u0, v0, ch) * (1 - tu) + at(u1, v0, ch) * tu) * (1 - tv) +
            (at(u0, v1, ch) * (1 - tu) + at(u1, v1, ch) * tu) * tv;
        }
        out[o + ch] = val;
      }
    }
  }
  return out;
}

/**
 * A randomly augmented copy of a slice pair, reproducible from `rng`: the same flip, rotation and
 * scaling for every source channel, the target and the mask (bilinear for images, nearest for the
 * mask), and for the source alone an intensity jitter, a smooth bias field, a gamma (contrast)
 * change, at times a coarser resolution, and Gaussian noise, so that a scanner not seen in training
 * is less of a surprise; the target keeps its meaning (HU, SUV).
 */
export function augmentPair(pair: SlicePair, rng: () => number, opts: AugmentOptions = {}): SlicePair {
  const flip = rng() < (opts.flip ?? 0.5) ? -1 : 1;
  const a = ((rng() * 2 - 1) * (opts.rotateDeg ?? 8) * Math.PI) / 180;
  const s = 1 + (rng() * 2 - 1) * (opts.scale ?? 0.08);
  const gain = 1 + (rng() * 2 - 1) * (opts.intensityScale ?? 0.1);
  const shift = (rng() * 2 - 1) * (opts.intensityShift ?? 0.05);
  const biasAmp = opts.biasField ?? 0.2;
  const bias = [rng() * 2 - 1, rng() * 2 - 1, rng() * 2 - 1, rng() * 2 - 1, rng() * 2 - 1];
  const gamma = Math.exp((rng() * 2 - 1) * (opts.gamma ?? 0.2));
  // Drawn after the others, so that the earlier draws are what they always were for a seed.
  const coarser = rng() < (opts.lowRes ?? 0.25);
  const factor = 1 + rng() * ((opts.lowResFactor ?? 2.5) - 1);
  const noiseStd = rng() * (opts.noise ?? 0.02);
  // Inverse map from output to input coordinates.
  const cos = Math.cos(a) / s;
  const sin = Math.sin(a) / s;
  const m = [flip * cos, -sin, flip * sin, cos];
  const size = pair.size;
  const ch = pair.channels ?? 1;
  const warped = warp(pair.source, size, ch, m, -1, false);
  const source = coarser ? lowerResolution(warped, size, ch, factor) : warped;
  // The bias field's terms (x, y, x^2, y^2, xy in [-1, 1]) have a range of at most 5 together.
  const k = biasAmp / 2 / 5;
  for (let y = 0; y < size; y++) {
    const yy = (2 * y) / (size - 1) - 1;
    for (let x = 0; x < size; x++) {
      const xx = (2 * x) / (size - 1) - 1;
      const field = Math.exp(
        k * (bias[0] * xx + bias[1] * yy + bias[2] * xx * xx + bias[3] * yy * yy + bias[4] * xx * yy),
      );
      for (let c = 0; c < ch; c++) {
        const i = (y * size + x) * ch + c;
        // On [0, 1]: contrast (gamma), bias field, gain; then the shift, back on [-1, 1].
        const v01 = ((source[i] + 1) / 2) ** gamma * field * gain;
        const noise = noiseStd > 0 ? noiseStd * gaussian(rng) : 0;
        source[i] = Math.max(-1, Math.min(1, v01 * 2 - 1 + shift + noise));
      }
    }
  }
  const maskF = warp(Float32Array.from(pair.mask), size, 1, m, 0, true);
  return {
    ...pair,
    source,
    target: warp(pair.target, size, 1, m, -1, false),
    mask: Uint8Array.from(maskF, (v) => (v > 0.5 ? 1 : 0)),
  };
}
