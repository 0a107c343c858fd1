import type { QuantizationParams } from './params';
import type { Prg } from './prg';
import { CHUNK_ELEMENTS } from './prg';

/**
 * Fixed-point encoding. A site with weight w encodes each value x as
 *   v = (clamp(x, -c, c) * w / W + c) * (Q - 1) / (2c)   in [0, Q-1],
 * rounded stochastically (up with probability frac(v), so the encoding is unbiased), and its
 * weight as (w / W) * (Q - 1), also rounded stochastically; W = maxWeight. Sums of up to n
 * encodings stay below n (Q - 1) < 2^32, so arithmetic mod 2^32 never wraps.
 *
 * Decoding the sum over a set S of sites: A = sum * 2c/(Q-1) - |S| c estimates sum_u (w_u/W) x_u,
 * B = weightSum / (Q-1) estimates sum_u w_u/W, and the weighted mean is A / B.
 *
 * Error bound: each rounding moves a value by less than one step d = 2c/(Q-1) in value units
 * (1/(Q-1) for the weight), so |A - A_true| < |S| d and |B - B_true| < |S|/(Q-1). With |A_true| <= c B_true,
 *   |A/B - A_true/B_true| <= (|A - A_true| + c |B - B_true|) / B < 3 c |S| / ((Q - 1) B).
 * `meanErrorBound` returns that figure for a decoded sum.
 */

/** Encodes `values[from, from + out.length)` of one site into `out` (mod 2^32 integers). */
export function quantizeInto(
  out: Uint32Array,
  values: Float32Array,
  from: number,
  weightFraction: number,
  q: QuantizationParams,
  rounding: Prg,
): void {
  const c = q.clip;
  const scale = (q.levels - 1) / (2 * c);
  const top = q.levels - 1;
  for (let o = 0; o < out.length; o += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, out.length - o);
    const u = rounding.next(n);
    for (let i = 0; i < n; i++) {
      let x = values[from + o + i];
      if (x > c) x = c;
      else if (x < -c) x = -c;
      else if (Number.isNaN(x)) x = 0; // NaN never reaches the wire (callers reject NaN updates first)
      const v = (x * weightFraction + c) * scale;
      let f = Math.floor(v);
      if (u[i] * 2.3283064365386963e-10 < v - f) f += 1;
      out[o + i] = f > top ? top : f;
    }
  }
}

/** Encodes the weight fraction w/W in [0, 1] as one element. */
export function quantizeWeight(weightFraction: number, q: QuantizationParams, rounding: Prg): number {
  const v = weightFraction * (q.levels - 1);
  const f = Math.floor(v);
  return rounding.next(1)[0] * 2.3283064365386963e-10 < v - f ? f + 1 : f;
}

/** Decoded result of a sum over `count` sites. */
export interface Decoded {
  mean: Float32Array;
  /** Estimated sum of weight fractions (sum of w_u / W). */
  weightFractionSum: number;
  /** The documented bound on |mean - exact weighted mean of the clipped values|, per element. */
  errorBound: number;
}

/** Decodes a sum of `count` encodings (values then the weight element last). */
export function dequantizeSum(sum: Uint32Array, count: number, q: QuantizationParams): Decoded {
  const n = sum.length - 1;
  const step = (2 * q.clip) / (q.levels - 1);
  const b = sum[n] / (q.levels - 1);
  const mean = new Float32Array(n);
  const offset = count * q.clip;
  if (b > 0) for (let i = 0; i < n; i++) mean[i] = (sum[i] * step - offset) / b;
  return { mean, weightFractionSum: b, errorBound: meanErrorBound(count, b, q) };
}

/** 3 c |S| / ((Q - 1) B): see the derivation above. */
export function meanErrorBound(count: number, weightFractionSum: number, q: QuantizationParams): number {
  return weightFractionSum > 0 ? (3 * q.clip * count) / ((q.levels - 1) * weightFractionSum) : Infinity;
}

/** The whole encoded vector of one site (values then weight), as the client masks it. */
export function encodeInput(
  values: Float32Array,
  weightFraction: number,
  q: QuantizationParams,
  rounding: Prg,
): Uint32Array {
  const out = new Uint32Array(values.length + 1);
  quantizeInto(out.subarray(0, values.length), values, 0, weightFraction, q, rounding);
  out[values.length] = quantizeWeight(weightFraction, q, rounding);
  return out;
}
