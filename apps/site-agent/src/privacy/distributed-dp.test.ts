import { mulberry32 } from '@fedsynth/imaging';
import { effectiveNoiseMultiplier, RdpAccountant } from '@fedsynth/protocol';
import { makeConfig, makeSites, simulateRound } from '@fedsynth/secure-agg/testing';
import { describe, expect, it } from 'vitest';
import { clipL2InPlace, privatizeUpdate, updateWeight } from './dp';

/**
 * The noise that reaches the aggregate, measured through a real secure-aggregation round (real
 * clients and server, masks, quantization): sites of very unequal size, threshold 3 of 5, with and
 * without a dropout. What the coordinator learns is sum / k; the noise in the sum must have
 * standard deviation z C sqrt(k / t), the multiplier the coordinator accounts the round at.
 */
const N = 200_000;
const dp = { clip: 1, noiseMultiplier: 1.0, delta: 1e-5 };
const THRESHOLD = 3;
const SLICES = [12, 40, 95, 230, 800];
const MAX_WEIGHT = 1000;

function siteUpdate(site: number): Float32Array {
  // Updates of different norms: the larger sites' are clipped, the smaller ones' not.
  const scale = [4e-4, 1e-3, 2.5e-3, 5e-3, 1e-2][site];
  return Float32Array.from({ length: N }, (_, i) => scale * Math.sin(i * 0.37 + site));
}

function aggregateNoiseStd(dropAt: number | null): { std: number; survivors: number } {
  const sites = makeSites(5, 'dp-noise');
  const config = makeConfig(sites, {
    threshold: THRESHOLD,
    vectorLength: N,
    quantization: { clip: 5, levels: 2 ** 24, maxWeight: MAX_WEIGHT },
  });
  const inputs = new Map<number, { values: Float32Array; weight: number }>();
  const clean: Float32Array[] = [];
  for (let s = 0; s < 5; s++) {
    const update = siteUpdate(s);
    const clipped = Float32Array.from(update);
    clipL2InPlace(clipped, dp.clip);
    clean.push(clipped);
    privatizeUpdate(update, dp, THRESHOLD, new RdpAccountant(), mulberry32(100 + s));
    inputs.set(s + 1, { values: update, weight: updateWeight(SLICES[s], MAX_WEIGHT, true) });
  }
  const drops = dropAt === null ? new Map() : new Map([[dropAt, 'masked-input' as const]]);
  const { result } = simulateRound({ config, sites, inputs, drops });
  const k = result.survivors.length;
  let s2 = 0;
  for (let i = 0; i < N; i++) {
    let signal = 0;
    for (const u of result.survivors) signal += clean[u - 1][i];
    const noise = result.mean[i] * k - signal;
    s2 += noise * noise;
  }
  return { std: Math.sqrt(s2 / N), survivors: k };
}

describe('distributed DP through secure aggregation', () => {
  it('gives the aggregated sum the noise the accountant is told, for unequal sites and with a dropout', () => {
    for (const dropAt of [null, 4]) {
      const { std, survivors } = aggregateNoiseStd(dropAt);
      expect(survivors).toBe(dropAt === null ? 5 : 4);
      const target = effectiveNoiseMultiplier(dp.noiseMultiplier, survivors, THRESHOLD) * dp.clip;
      console.info(
        `${survivors} survivors: aggregate noise std ${std.toFixed(4)}, target ${target.toFixed(4)}`,
      );
      expect(Math.abs(std - target) / target, `${survivors} survivors`).toBeLessThan(0.02);
      // Never below the guaranteed z C, whatever the dropouts.
      expect(std).toBeGreaterThan(dp.noiseMultiplier * dp.clip * 0.98);
    }
  }, 120_000);

  it('weighs every site alike under DP, by data size without it', () => {
    expect(SLICES.map((n) => updateWeight(n, MAX_WEIGHT, true))).toEqual([1000, 1000, 1000, 1000, 1000]);
    expect(SLICES.map((n) => updateWeight(n, MAX_WEIGHT, false))).toEqual([12, 40, 95, 230, 800]);
    expect(updateWeight(5000, MAX_WEIGHT, false)).toBe(MAX_WEIGHT);
  });
});
