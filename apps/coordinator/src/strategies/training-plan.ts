import type { FederationConfig } from '@fedsynth/protocol';
import type { TrainingPlan } from './strategy';

/** The plan sites train a round with, taken from the federation's configuration. */
export function trainingPlanOf(config: FederationConfig, proxMu: number): TrainingPlan {
  const { localSteps, batchSize, lr, prediction, schedule } = config.plan;
  const { clip, noiseMultiplier, delta } = config.dp;
  return {
    localSteps,
    batchSize,
    lr,
    size: config.model.size,
    prediction,
    schedule,
    fedProxMu: proxMu,
    dp: { clip, noiseMultiplier, delta },
  };
}
