import type { StrategyConfig } from '@fedsynth/protocol';
import { BaseStrategy } from './base-strategy';

export type FedAvgMConfig = Extract<StrategyConfig, { kind: 'fedavgm' }>;

/**
 * FedAvg with server momentum (Hsu et al. 2019): v <- momentum v + d; w <- w + lr v, with v
 * starting at 0, so the first step is plain FedAvg.
 */
export class FedAvgM extends BaseStrategy {
  readonly kind = 'fedavgm';
  protected readonly stateNames = ['momentum'] as const;

  constructor(private readonly config: FedAvgMConfig) {
    super(config.proxMu);
  }

  protected initialValue(): number {
    return 0;
  }

  protected step(weights: Float32Array, delta: Float32Array, [v]: Float32Array[], out: Float32Array): void {
    const { lr, momentum } = this.config;
    for (let i = 0; i < out.length; i++) {
      v[i] = momentum * v[i] + delta[i];
      out[i] = weights[i] + lr * v[i];
    }
  }
}
