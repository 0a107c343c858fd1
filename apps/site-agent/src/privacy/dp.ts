import { randomBytes } from 'node:crypto';
import { siteNoiseStd } from '@fedsynth/protocol';

/** A source of uniform doubles in [0, 1). Cryptographic by default; tests inject a seeded one. */
export type UniformSource = () => number;

/** Uniform doubles from node:crypto, 53 bits each, drawn in blocks to keep the cost low. */
export function cryptoUniform(): UniformSource {
  let buf = randomBytes(0);
  let pos = 0;
  return () => {
    if (pos + 8 > buf.length) {
      buf = randomBytes(8 * 4096);
      pos = 0;
    }
    const hi = buf.readUInt32LE(pos) >>> 5; // 27 bits
    const lo = buf.readUInt32LE(pos + 4) >>> 6; // 26 bits
    pos += 8;
    return (hi * 67108864 + lo) / 9007199254740992;
  };
}

/** L2 norm of a vector, accumulated in double precision. */
export function l2Norm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/**
 * Scales `delta` in place so that its L2 norm is at most `clip`; returns the norm before clipping
 * and the factor applied (1 when the update was already small enough).
 */
export function clipL2InPlace(delta: Float32Array, clip: number): { norm: number; factor: number } {
  if (!(clip > 0) || !Number.isFinite(clip))
    throw new RangeError(`clip norm must be a positive number, got ${clip}`);
  const norm = l2Norm(delta);
  if (!Number.isFinite(norm)) throw new RangeError('update contains NaN or infinite values');
  const factor = norm > clip ? clip / norm : 1;
  if (factor !== 1) for (let i = 0; i < delta.length; i++) delta[i] *= factor;
  return { norm, factor };
}

/** Adds N(0, std^2) to every element of `v` in place (Box-Muller on the given uniform source). */
export function addGaussianNoiseInPlace(
  v: Float32Array,
  std: number,
  uniform: UniformSource = cryptoUniform(),
): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise std must be >= 0, got ${std}`);
  if (std === 0) return;
  for (let i = 0; i < v.length; i += 2) {
    let u1 = uniform();
    while (u1 <= 0) u1 = uniform();
    const u2 = uniform();
    const r = std * Math.sqrt(-2 * Math.log(u1));
    v[i] += r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < v.length) v[i + 1] += r * Math.sin(2 * Math.PI * u2);
  }
}

/** What differential privacy did to one round's update. */
export interface PrivatizedUpdate {
  /** L2 norm before clipping, and the factor applied. */
  norm: number;
  factor: number;
  /** Std of the Gaussian noise this site added per element (0 without noise). */
  noiseStd: number;
  /** Cumulative epsilon at `dp.delta` after this round, or null when no noise is used. */
  epsilon: number | null;
}

/**
 * One round of DP-FedAvg at a site, in place: clip the update to L2 norm `dp.clip`; with a noise
 * multiplier z > 0 add this site's share N(0, (z C)^2 / t) of the aggregate's noise (t = the
 * round's secure-aggregation threshold, the fewest survivors it completes with, so the sum always
 * carries at least N(0, (z C)^2); see libs/protocol's distributed-dp) and record the round at z
 * (a bound: dropouts never take the noise below it) in the accountant, whose state the caller
 * persists. The caller sends the update with the equal weight DP needs (dpWeight).
 */
export function privatizeUpdate(
  delta: Float32Array,
  dp: { clip: number; noiseMultiplier: number; delta: number },
  threshold: number,
  accountant: { record(z: number, q: number, steps: number): void; epsilon(delta: number): number },
  uniform?: UniformSource,
): PrivatizedUpdate {
  const { norm, factor } = clipL2InPlace(delta, dp.clip);
  if (!(dp.noiseMultiplier > 0)) return { norm, factor, noiseStd: 0, epsilon: null };
  const noiseStd = siteNoiseStd(dp.noiseMultiplier, dp.clip, threshold);
  addGaussianNoiseInPlace(delta, noiseStd, uniform);
  accountant.record(dp.noiseMultiplier, 1, 1);
  return { norm, factor, noiseStd, epsilon: accountant.epsilon(dp.delta) };
}

/**
 * The weight a site gives its update in the aggregate: its training slices (capped at the round's
 * maxWeight), or with DP noise the same weight for every site, since the noise covers a change of
 * at most C in the sum, and a data-size weight would scale a large site's influence beyond it.
 */
export function updateWeight(trainSlices: number, maxWeight: number, dpNoise: boolean): number {
  return dpNoise ? maxWeight : Math.min(trainSlices, maxWeight);
}
