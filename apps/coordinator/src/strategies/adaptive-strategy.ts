import type { StrategyConfig } from '@fedsynth/protocol';
import { BaseStrategy } from './base-strategy';

export type AdaptiveConfig = Extract<StrategyConfig, { kind: 'fedadam' | 'fedyogi' }>;

/**
 * The adaptive server optimizers of Reddi et al. 2021 ("Adaptive Federated Optimization"), which
 * differ only in how the second moment follows d^2:
 *   m <- b1 m + (1-b1) d;  v <- secondMoment(v, d^2);  w <- w + lr m / (sqrt(v) + tau)
 * with m starting at 0 and v at tau^2. No bias correction, as in the paper.
 */
export abstract class AdaptiveStrategy extends BaseStrategy {
  abstract override readonly kind: AdaptiveConfig['kind'];
  protected readonly stateNames = ['m', 'v'] as const;

  constructor(protected readonly config: AdaptiveConfig) {
    super(config.proxMu);
  }

  /** The new second moment from the old one and the squared delta. */
  protected abstract secondMoment(v: number, d2: number): number;

  protected initialValue(name: string): number {
    return name === 'v' ? this.config.tau * this.config.tau : 0;
  }

  protected step(
    weights: Float32Array,
    delta: Float32Array,
    [m, v]: Float32Array[],
    out: Float32Array,
  ): void {
    const { lr, beta1, tau } = this.config;
    for (let i = 0; i < out.length; i++) {
      const d = delta[i];
      m[i] = beta1 * m[i] + (1 - beta1) * d;
      v[i] = this.secondMoment(v[i], d * d);
      out[i] = weights[i] + (lr * m[i]) / (Math.sqrt(v[i]) + tau);
    }
  }
}
