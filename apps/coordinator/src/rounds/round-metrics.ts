import { effectiveNoiseMultiplier, type Message, privacySpent } from '@fedsynth/protocol';
import type { MetricEntity } from '../db/entities';
import { DP_MULTIPLIER_METRIC } from './privacy-budget';

/**
 * The most validation slices one site's evaluation report weighs, unless the federation's plan
 * sets `maxEvalCount`: a site reporting more is counted as this many, so a site that lies about its
 * count cannot outweigh the others.
 */
export const DEFAULT_MAX_EVAL_COUNT = 10_000;

/** Largest value of the integer count column. */
const INT32_MAX = 2 ** 31 - 1;

type MetricRow = Omit<MetricEntity, 'id'>;

/**
 * The metric rows of a completed round: the mean training loss of the survivors, each site's
 * cumulative DP epsilon and the largest as the global figure, the number of sites, and each
 * evaluating site's MAE/PSNR/SSIM with the global figure weighted by its slice count, capped at
 * `maxEvalCount` per site. Reports are range-checked by the protocol schemas before they get
 * here, so one site moves a global figure by at most its capped weight times the range.
 */
export function roundMetrics(input: {
  federationId: string;
  roundNumber: number;
  siteIdOf: (index: number) => string;
  survivors: readonly number[];
  trainReports: ReadonlyMap<number, Message<'round.train-report'>>;
  evalReports: ReadonlyMap<number, Message<'round.eval-report'>>;
  maxEvalCount: number;
  /**
   * The round's DP noise (multiplier z, delta, the secure-aggregation threshold t) and the
   * effective multipliers of the federation's earlier noised rounds: the round is accounted at
   * z sqrt(k / t) for its k survivors, and the global epsilon is the coordinator's own account.
   */
  dp?: { noiseMultiplier: number; delta: number; threshold: number; history: readonly number[] };
}): MetricRow[] {
  const { federationId, roundNumber } = input;
  const cap = Math.max(1, Math.min(INT32_MAX, Math.floor(input.maxEvalCount) || DEFAULT_MAX_EVAL_COUNT));
  const rows: MetricRow[] = [];
  const row = (siteId: string | null, name: string, value: number, count: number) =>
    rows.push({ federationId, roundNumber, siteId, name, value, count: Math.min(count, INT32_MAX) });
  const reports = [...input.trainReports.entries()].filter(([i]) => input.survivors.includes(i));
  // A report without figures (its loss went into the masked vector) only says the site trained.
  const losses = reports.flatMap(([, r]) => (r.loss === undefined ? [] : [r.loss]));
  if (losses.length)
    row(null, 'train_loss', losses.reduce((x, l) => x + l, 0) / losses.length, losses.length);
  // Each site's own (conservative) account, as it reports it.
  const eps = reports.filter(([, r]) => r.epsilon !== null && r.epsilon !== undefined);
  for (const [i, r] of eps) row(input.siteIdOf(i), 'epsilon', r.epsilon!, 1);
  const dp = input.dp;
  if (dp && dp.noiseMultiplier > 0) {
    const k = input.survivors.length;
    const zEff = effectiveNoiseMultiplier(dp.noiseMultiplier, k, dp.threshold);
    row(null, DP_MULTIPLIER_METRIC, zEff, k);
    row(null, 'epsilon', privacySpent([...dp.history, zEff], dp.delta), k);
  } else if (eps.length) row(null, 'epsilon', Math.max(...eps.map(([, r]) => r.epsilon!)), eps.length);
  row(null, 'sites', input.survivors.length, input.survivors.length);
  const evals = [...input.evalReports.entries()]
    .map(([i, r]) => ({ i, r, w: Math.min(r.count, cap) }))
    .filter((e) => e.w > 0);
  for (const { i, r, w } of evals)
    for (const name of ['mae', 'psnr', 'ssim'] as const) row(input.siteIdOf(i), name, r[name], w);
  const n = evals.reduce((x, e) => x + e.w, 0);
  if (n > 0)
    for (const name of ['mae', 'psnr', 'ssim'] as const)
      row(null, name, evals.reduce((x, e) => x + e.r[name] * e.w, 0) / n, n);
  // Memorization check: how near the synthesized slices lie to the sites' training slices, next to
  // how near real unseen slices do; the global ratio is about 1 for a model that does not copy.
  const near = evals.filter((e) => e.r.nearestSynth !== undefined && e.r.nearestReal !== undefined);
  for (const { i, r, w } of near) {
    row(input.siteIdOf(i), 'nearest_synth', r.nearestSynth!, w);
    row(input.siteIdOf(i), 'nearest_real', r.nearestReal!, w);
  }
  const m = near.reduce((x, e) => x + e.w, 0);
  if (m > 0) {
    const synth = near.reduce((x, e) => x + e.r.nearestSynth! * e.w, 0) / m;
    const real = near.reduce((x, e) => x + e.r.nearestReal! * e.w, 0) / m;
    row(null, 'nearest_synth', synth, m);
    row(null, 'nearest_real', real, m);
    if (real > 0) row(null, 'memorization_ratio', synth / real, m);
  }
  return rows;
}
