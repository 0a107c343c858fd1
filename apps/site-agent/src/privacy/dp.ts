import { randomBytes } from 'node:crypto';

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

/**
 * Per-site noise std for distributed DP: each of `expectedSites` sites adds N(0, (z C)^2 / m), so
 * the securely aggregated sum carries N(0, (z C)^2) even though no site adds all of it.
 */
export function distributedNoiseStd(noiseMultiplier: number, clip: number, expectedSites: number): number {
  if (!(noiseMultiplier >= 0)) throw new RangeError(`noise multiplier must be >= 0, got ${noiseMultiplier}`);
  if (!Number.isInteger(expectedSites) || expectedSites < 1) {
    throw new RangeError(`expected sites must be a positive integer, got ${expectedSites}`);
  }
  return (noiseMultiplier * clip) / Math.sqrt(expectedSites);
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
 * multiplier z > 0 add this site's share N(0, (z C)^2 / n) of the aggregate's noise (n = the
 * round's participants) and record the round (every site takes part: sampling rate 1) in the
 * accountant, whose state the caller persists.
 */
export function privatizeUpdate(
  delta: Float32Array,
  dp: { clip: number; noiseMultiplier: number; delta: number },
  participants: number,
  accountant: { record(z: number, q: number, steps: number): void; epsilon(delta: number): number },
  uniform?: UniformSource,
): PrivatizedUpdate {
  const { norm, factor } = clipL2InPlace(delta, dp.clip);
  if (!(dp.noiseMultiplier > 0)) return { norm, factor, noiseStd: 0, epsilon: null };
  const noiseStd = distributedNoiseStd(dp.noiseMultiplier, dp.clip, participants);
  addGaussianNoiseInPlace(delta, noiseStd, uniform);
  accountant.record(dp.noiseMultiplier, 1, 1);
  return { norm, factor, noiseStd, epsilon: accountant.epsilon(dp.delta) };
}
