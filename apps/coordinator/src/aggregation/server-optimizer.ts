/**
 * Server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization") on flat weight vectors:
 * the securely aggregated mean delta is treated as a pseudo-gradient step.
 *   FedAvg:  w <- w + lr * d
 *   FedAdam: m <- b1 m + (1-b1) d;  v <- b2 v + (1-b2) d^2;           w <- w + lr * m / (sqrt(v) + tau)
 *   FedYogi: m as Adam;             v <- v - (1-b2) d^2 sign(v - d^2); w <- w + lr * m / (sqrt(v) + tau)
 */
export type ServerOptimizerConfig =
  | { kind: 'fedavg'; lr: number }
  | { kind: 'fedadam' | 'fedyogi'; lr: number; beta1: number; beta2: number; tau: number };

/** Optimizer state kept between rounds (persisted with the checkpoint). */
export interface ServerOptimizerState {
  m?: Float32Array;
  v?: Float32Array;
}

/** Checks a configuration, naming the bad field. */
export function validateServerOptimizer(c: ServerOptimizerConfig): void {
  if (!['fedavg', 'fedadam', 'fedyogi'].includes(c?.kind))
    throw new RangeError('serverOptimizer.kind must be fedavg, fedadam or fedyogi');
  if (!(c.lr > 0 && Number.isFinite(c.lr)))
    throw new RangeError('serverOptimizer.lr must be a positive number');
  if (c.kind !== 'fedavg') {
    if (!(c.beta1 >= 0 && c.beta1 < 1)) throw new RangeError('serverOptimizer.beta1 must be in [0, 1)');
    if (!(c.beta2 >= 0 && c.beta2 < 1)) throw new RangeError('serverOptimizer.beta2 must be in [0, 1)');
    if (!(c.tau > 0)) throw new RangeError('serverOptimizer.tau must be positive');
  }
}

/** Applies one server step; returns the new weights and state (inputs are not modified). */
export function applyServerStep(
  weights: Float32Array,
  delta: Float32Array,
  config: ServerOptimizerConfig,
  state: ServerOptimizerState = {},
): { weights: Float32Array; state: ServerOptimizerState } {
  validateServerOptimizer(config);
  if (delta.length !== weights.length)
    throw new RangeError(`delta has ${delta.length} values; the model has ${weights.length}`);
  for (let i = 0; i < delta.length; i++) {
    if (!Number.isFinite(delta[i]))
      throw new RangeError(`aggregated delta value ${i} is ${delta[i]}; refusing to apply it`);
  }
  const out = new Float32Array(weights.length);
  if (config.kind === 'fedavg') {
    for (let i = 0; i < out.length; i++) out[i] = weights[i] + config.lr * delta[i];
    return { weights: out, state: {} };
  }
  const m = state.m ? Float32Array.from(state.m) : new Float32Array(weights.length);
  const v = state.v
    ? Float32Array.from(state.v)
    : new Float32Array(weights.length).fill(config.tau * config.tau);
  const { beta1: b1, beta2: b2, lr, tau } = config;
  for (let i = 0; i < out.length; i++) {
    const d = delta[i];
    m[i] = b1 * m[i] + (1 - b1) * d;
    const d2 = d * d;
    v[i] =
      config.kind === 'fedadam' ? b2 * v[i] + (1 - b2) * d2 : v[i] - (1 - b2) * d2 * Math.sign(v[i] - d2);
    out[i] = weights[i] + (lr * m[i]) / (Math.sqrt(v[i]) + tau);
  }
  return { weights: out, state: { m, v } };
}
