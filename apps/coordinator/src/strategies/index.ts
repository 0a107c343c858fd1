import type { StrategyConfig } from '@fedsynth/protocol';
import { FedAdam } from './fedadam';
import { FedAvg } from './fedavg';
import { FedAvgM } from './fedavgm';
import { FedYogi } from './fedyogi';
import { Scaffold } from './scaffold';
import { type Strategy, StrategyError } from './strategy';

export { FedAdam } from './fedadam';
export { FedAvg } from './fedavg';
export { FedAvgM } from './fedavgm';
export { FedYogi } from './fedyogi';
export { Scaffold } from './scaffold';
export { selectSites } from './select-sites';
export type {
  RoundConfiguration,
  RoundInput,
  Strategy,
  StrategyKind,
  StrategyState,
  TrainingPlan,
} from './strategy';
export { StrategyError } from './strategy';
export { StrategyStateStore } from './strategy-state-store';
export { trainingPlanOf } from './training-plan';

/** A fresh strategy (no state yet) for a federation's validated strategy configuration. */
export function createStrategy(config: StrategyConfig): Strategy {
  switch (config?.kind) {
    case 'fedavg':
      return new FedAvg(config);
    case 'fedavgm':
      return new FedAvgM(config);
    case 'fedadam':
      return new FedAdam(config);
    case 'fedyogi':
      return new FedYogi(config);
    case 'scaffold':
      return new Scaffold(config);
    default:
      throw new StrategyError(
        'INVALID_INPUT',
        `unknown strategy kind ${(config as { kind?: unknown })?.kind}`,
      );
  }
}
