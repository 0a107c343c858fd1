import type { StrategyConfig } from '@fedsynth/protocol';
import { BaseStrategy } from './base-strategy';
import { StrategyError } from './strategy';

export type ScaffoldConfig = Extract<StrategyConfig, { kind: 'scaffold' }>;

/**
 * SCAFFOLD's server side (see libs/protocol/src/scaffold.ts): FedAvg's step w <- w + lr d, and the
 * global control variate c, kept as the strategy's state vector `control` (so it is saved beside
 * each checkpoint and survives a restart). The round's sites send their new control variates
 * inside the masked vector; the coordinator hands their weighted mean to `aggregateWithControl`,
 * which takes it as the next c together with the step. c starts at zero.
 */
export class Scaffold extends BaseStrategy {
  readonly kind = 'scaffold';
  protected readonly stateNames = ['control'] as const;
  private pendingControl: Float32Array | null = null;

  constructor(private readonly config: ScaffoldConfig) {
    super(config.proxMu);
  }

  protected initialValue(): number {
    return 0;
  }

  /** The global control variate sites correct with this round; null before the first round. */
  control(): Float32Array | null {
    return this.saveState().tensors[0]?.data ?? null;
  }

  /**
   * One round: the step with the mean update, and `meanControl` (the round's sites' control
   * variates, their weighted mean, unscaled) as the next c. Nothing changes when either is refused.
   */
  aggregateWithControl(
    weights: Float32Array,
    meanDelta: Float32Array,
    meanControl: Float32Array,
  ): Float32Array {
    if (!(meanControl instanceof Float32Array) || meanControl.length !== weights.length)
      throw new StrategyError(
        'INVALID_UPDATE',
        `the mean control variate has ${meanControl?.length} values; the model has ${weights.length}`,
      );
    const bad = meanControl.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new StrategyError(
        'INVALID_UPDATE',
        `the mean control variate's value ${bad} is ${meanControl[bad]}; refusing it`,
      );
    this.pendingControl = meanControl;
    try {
      return this.aggregate(weights, meanDelta);
    } finally {
      this.pendingControl = null;
    }
  }

  protected step(weights: Float32Array, delta: Float32Array, [c]: Float32Array[], out: Float32Array): void {
    if (!this.pendingControl)
      throw new StrategyError(
        'INVALID_UPDATE',
        'a SCAFFOLD round needs the mean control variate with the mean update (aggregateWithControl)',
      );
    c.set(this.pendingControl);
    const { lr } = this.config;
    for (let i = 0; i < out.length; i++) out[i] = weights[i] + lr * delta[i];
  }
}
