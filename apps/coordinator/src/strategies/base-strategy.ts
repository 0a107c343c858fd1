import { selectSites } from './select-sites';
import {
  type RoundConfiguration,
  type RoundInput,
  type Strategy,
  StrategyError,
  type StrategyKind,
  type StrategyState,
} from './strategy';
import { trainingPlanOf } from './training-plan';

/**
 * What every strategy shares: selection, the plan, checking inputs, and keeping the state, which
 * changes only when a step succeeds. A subclass names its state vectors, their initial value, and
 * the step itself.
 */
export abstract class BaseStrategy implements Strategy {
  abstract readonly kind: StrategyKind;
  /** Names of the state vectors, each as long as the model. */
  protected abstract readonly stateNames: readonly string[];
  private vectors: Float32Array[] | null = null;
  private steps = 0;

  constructor(private readonly proxMu: number) {}

  /** The value each state vector starts from. */
  protected abstract initialValue(name: string): number;

  /** Writes the new weights to `out` and updates `state` (copies) in place. */
  protected abstract step(
    weights: Float32Array,
    delta: Float32Array,
    state: Float32Array[],
    out: Float32Array,
  ): void;

  configureRound({ roundId, online, config, roundNumber }: RoundInput): RoundConfiguration {
    return {
      siteIds: selectSites(roundId, online, config.plan),
      plan: trainingPlanOf(config, this.proxMu, roundNumber),
    };
  }

  aggregate(weights: Float32Array, meanDelta: Float32Array): Float32Array {
    if (!(weights instanceof Float32Array))
      throw new StrategyError('INVALID_UPDATE', 'weights must be a Float32Array');
    if (!(meanDelta instanceof Float32Array))
      throw new StrategyError('INVALID_UPDATE', 'meanDelta must be a Float32Array');
    const n = weights.length;
    if (meanDelta.length !== n)
      throw new StrategyError(
        'INVALID_UPDATE',
        `meanDelta has ${meanDelta.length} values; the model has ${n}`,
      );
    if (this.vectors && this.vectors.length > 0 && this.vectors[0].length !== n)
      throw new StrategyError(
        'INVALID_STATE',
        `the ${this.kind} state holds ${this.vectors[0].length} values; the model has ${n}`,
      );
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(meanDelta[i]))
        throw new StrategyError(
          'INVALID_UPDATE',
          `meanDelta value ${i} is ${meanDelta[i]}; refusing to apply it`,
        );
    }
    const state = this.vectors
      ? this.vectors.map((v) => Float32Array.from(v))
      : this.stateNames.map((name) => new Float32Array(n).fill(this.initialValue(name)));
    const out = new Float32Array(n);
    this.step(weights, meanDelta, state, out);
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(out[i]))
        throw new StrategyError(
          'INVALID_UPDATE',
          `the ${this.kind} step made weight ${i} ${out[i]}; refusing it`,
        );
    }
    this.vectors = state;
    this.steps += 1;
    return out;
  }

  saveState(): StrategyState {
    const tensors = (this.vectors ?? []).map((v, i) => ({
      name: this.stateNames[i],
      data: Float32Array.from(v),
    }));
    return { kind: this.kind, steps: this.steps, tensors };
  }

  loadState(state: StrategyState, length?: number): void {
    const bad = (why: string) => new StrategyError('INVALID_STATE', `cannot load strategy state: ${why}`);
    if (state?.kind !== this.kind) throw bad(`it is a ${state?.kind} state; this strategy is ${this.kind}`);
    if (!Number.isSafeInteger(state.steps) || state.steps < 0)
      throw bad(`steps is ${state.steps}; expected a non-negative integer`);
    const byName = new Map(state.tensors.map((t) => [t.name, t.data]));
    if (state.tensors.length === 0) {
      // Fresh: no step taken yet (FedAvg never has vectors, whatever its step count).
      if (this.stateNames.length > 0 && state.steps > 0)
        throw bad(`${state.steps} steps but no state vectors`);
      this.vectors = null;
      this.steps = state.steps;
      return;
    }
    const names = [...byName.keys()].sort().join(', ');
    if (byName.size !== state.tensors.length || names !== [...this.stateNames].sort().join(', '))
      throw bad(
        `it holds vectors [${names}]; a ${this.kind} state holds [${[...this.stateNames].sort().join(', ')}]`,
      );
    const vectors = this.stateNames.map((name) => byName.get(name)!);
    const n = length ?? vectors[0].length;
    for (const [i, v] of vectors.entries()) {
      if (!(v instanceof Float32Array)) throw bad(`vector ${this.stateNames[i]} is not a Float32Array`);
      if (v.length !== n) throw bad(`vector ${this.stateNames[i]} holds ${v.length} values; expected ${n}`);
      const j = v.findIndex((x) => !Number.isFinite(x));
      if (j >= 0) throw bad(`vector ${this.stateNames[i]} value ${j} is ${v[j]}`);
    }
    this.vectors = vectors.map((v) => Float32Array.from(v));
    this.steps = state.steps;
  }
}
