import type { FederationConfig } from '@fedsynth/protocol';
import type { TrainingPlan } from './strategy';

/**
 * The sites' learning rate in round `roundNumber` (numbered from 0, as the coordinator numbers
 * rounds) under the plan's schedule: constant, or a cosine from plan.lr in the first round down to
 * plan.lr * minFactor in the R-th (round number R - 1), held after.
 */
export function roundLr(plan: FederationConfig['plan'], roundNumber: number): number {
  const s = plan.lrSchedule;
  if (s.kind === 'constant') return plan.lr;
  const last = s.rounds ?? plan.rounds ?? 1;
  const progress = last <= 1 ? 1 : Math.min(1, Math.max(0, roundNumber / (last - 1)));
  return plan.lr * (s.minFactor + (1 - s.minFactor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** The plan sites train round `roundNumber` (from 0) with, taken from the federation's configuration. */
export function trainingPlanOf(config: FederationConfig, proxMu: number, roundNumber = 0): TrainingPlan {
  const { localSteps, batchSize, prediction, schedule, localEma, keepOptimizer } = config.plan;
  const { clip, noiseMultiplier, delta } = config.dp;
  return {
    localSteps,
    batchSize,
    lr: roundLr(config.plan, roundNumber),
    size: config.model.size,
    prediction,
    schedule,
    fedProxMu: proxMu,
    // Sent only when set, so that a plan without it reads (and is signed) as before.
    ...(localEma > 0 ? { localEma } : {}),
    ...(keepOptimizer ? { keepOptimizer: true as const } : {}),
    // The round adds the global control variate to fetch, once there is one (federation-round.ts).
    ...(config.strategy.kind === 'scaffold' ? { scaffold: {} } : {}),
    dp: { clip, noiseMultiplier, delta },
  };
}
