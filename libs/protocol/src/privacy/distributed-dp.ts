import { RdpAccountant } from './rdp-accountant';

/**
 * Differential privacy of a securely aggregated round, DP-FedAvg style, with the noise split
 * between the sites:
 *
 * - every site clips its update to L2 norm C and adds N(0, sigma^2) per element, with
 *   sigma = z C / sqrt(t), t the round's secure-aggregation threshold: the fewest survivors a round
 *   can complete with;
 * - sites weigh equally while noise is on (the sum of clipped updates is what is privatized; a
 *   data-size weight would let a large site move the sum by more than C, beyond what z covers);
 * - with k >= t survivors the aggregated sum carries N(0, k sigma^2) = N(0, (z_eff C)^2), where
 *   z_eff = z sqrt(k / t) >= z. Dropouts can only take the noise down to the guaranteed z, never
 *   below, and the coordinator accounts each round at its actual z_eff (an honest epsilon).
 */

/** The standard deviation of the noise one site adds per element. */
export function siteNoiseStd(noiseMultiplier: number, clip: number, threshold: number): number {
  if (!(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier))
    throw new RangeError(`noise multiplier must be >= 0, got ${noiseMultiplier}`);
  if (!(clip > 0) || !Number.isFinite(clip)) throw new RangeError(`clip must be positive, got ${clip}`);
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new RangeError(`threshold must be a positive integer, got ${threshold}`);
  return (noiseMultiplier * clip) / Math.sqrt(threshold);
}

/** The noise multiplier of the aggregated sum of `survivors` sites' noised updates. */
export function effectiveNoiseMultiplier(
  noiseMultiplier: number,
  survivors: number,
  threshold: number,
): number {
  if (!Number.isInteger(survivors) || survivors < threshold)
    throw new RangeError(`a round completes with at least ${threshold} survivors, got ${survivors}`);
  return noiseMultiplier * Math.sqrt(survivors / threshold);
}

/**
 * Epsilon at `delta` spent by rounds of the given effective noise multipliers (every site takes
 * part in every round it is chosen for: sampling rate 1, the conservative account).
 */
export function privacySpent(multipliers: readonly number[], delta: number): number {
  const acc = new RdpAccountant();
  for (const z of multipliers) acc.record(z, 1, 1);
  return acc.epsilon(delta);
}

/** Epsilon after one more round at the guaranteed multiplier (as if it ends with t survivors). */
export function epsilonAfterNextRound(
  multipliers: readonly number[],
  noiseMultiplier: number,
  delta: number,
): number {
  return privacySpent([...multipliers, noiseMultiplier], delta);
}
