import type { StrategyConfig } from '@fedsynth/protocol';
import { BaseStrategy } from './base-strategy';

export type FedAvgConfig = Extract<StrategyConfig, { kind: 'fedavg' }>;

/** FedAvg (McMahan et al. 2017) with a server learning rate: w <- w + lr d. It keeps no vectors. */
export class FedAvg extends BaseStrategy {
  readonly kind = 'fedavg';
  protected readonly stateNames = [] as const;

  constructor(private readonly config: FedAvgConfig) {
    super(config.proxMu);
  }

  protected initialValue(): number {
    return 0;
  }

  protected step(
    weights: Float32Array,
    delta: Float32Array,
    _state: Float32Array[],
    out: Float32Array,
  ): void {
    const { lr } = this.config;
    for (let i = 0; i < out.length; i++) out[i] = weights[i] + lr * delta[i];
  }
}
