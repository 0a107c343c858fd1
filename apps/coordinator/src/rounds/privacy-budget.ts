import { epsilonAfterNextRound, type FederationConfig, privacySpent } from '@fedsynth/protocol';
import { IsNull } from 'typeorm';
import { MetricEntity } from '../db/entities';
import type { CoordinatorContext } from '../http/context';

/** The global metric holding each completed round's effective noise multiplier (z sqrt(k / t)). */
export const DP_MULTIPLIER_METRIC = 'dp_noise_multiplier';

/** The effective noise multipliers of a federation's completed noised rounds, in round order. */
export async function noiseHistory(ctx: CoordinatorContext, federationId: string): Promise<number[]> {
  const rows = await ctx.db.dataSource.getRepository(MetricEntity).find({
    where: { federationId, siteId: IsNull(), name: DP_MULTIPLIER_METRIC },
    order: { roundNumber: 'ASC' },
  });
  return rows.map((r) => r.value);
}

/**
 * Why the next round may not run under the federation's privacy budget, or null: with DP noise and
 * an epsilon budget, the epsilon after one more round at the guaranteed multiplier z (the least
 * noise a round can end with) must stay within the budget.
 */
export function budgetExceeded(config: FederationConfig, history: readonly number[]): string | null {
  const { noiseMultiplier: z, delta, epsilonBudget } = config.dp;
  if (!(z > 0) || epsilonBudget === null) return null;
  const next = epsilonAfterNextRound(history, z, delta);
  if (next <= epsilonBudget) return null;
  return `its privacy budget is spent: epsilon ${privacySpent(history, delta).toFixed(3)} after ${history.length} noised rounds, ${next.toFixed(3)} after one more, budget ${epsilonBudget} (delta ${delta})`;
}

/** budgetExceeded for a federation, reading its noise history only when it has a DP budget. */
export async function federationOverBudget(
  ctx: CoordinatorContext,
  federationId: string,
  config: FederationConfig,
): Promise<string | null> {
  if (!(config.dp.noiseMultiplier > 0) || config.dp.epsilonBudget === null) return null;
  return budgetExceeded(config, await noiseHistory(ctx, federationId));
}
