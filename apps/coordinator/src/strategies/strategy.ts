import type { FederationConfig, Message, StrategyConfig } from '@fedsynth/protocol';

/**
 * A federation's strategy, free of any transport (after Flower's Strategy): it chooses a round's
 * sites and the plan they train with, and turns the securely aggregated mean delta into the next
 * weights, carrying its own optimizer state from round to round. The coordinator persists that
 * state beside each checkpoint (see StrategyStateStore), so a restart resumes it.
 */
export interface Strategy {
  readonly kind: StrategyKind;
  /** Draws the round's sites among the online ones and states the plan they train with. */
  configureRound(input: RoundInput): RoundConfiguration;
  /** Applies one server step to `weights` with `meanDelta`; returns new weights, updates the state. */
  aggregate(weights: Float32Array, meanDelta: Float32Array): Float32Array;
  /** A copy of the optimizer state, for writing beside the checkpoint it produced. */
  saveState(): StrategyState;
  /** Replaces the optimizer state; refuses a state of another kind or of a length other than `length`. */
  loadState(state: StrategyState, length?: number): void;
}

export type StrategyKind = StrategyConfig['kind'];
/** What sites receive in `round.start`: exactly the protocol's trainingPlan. */
export type TrainingPlan = Message<'round.start'>['plan'];

export interface RoundInput {
  /** Unique per round; the draw of sites is a function of it. */
  roundId: string;
  /** Site ids of the federation's online, approved sites. */
  online: string[];
  /** The round's number (from 0, as the coordinator numbers rounds), for the plan's learning-rate schedule; 0 when not given. */
  roundNumber?: number;
  config: FederationConfig;
}

export interface RoundConfiguration {
  /** The drawn sites, sorted by id. */
  siteIds: string[];
  plan: TrainingPlan;
}

/** A strategy's state: its kind, how many server steps it has taken, and its vectors (none when fresh). */
export interface StrategyState {
  kind: StrategyKind;
  steps: number;
  tensors: { name: string; data: Float32Array }[];
}

export type StrategyErrorCode = 'TOO_FEW_SITES' | 'INVALID_UPDATE' | 'INVALID_STATE' | 'INVALID_INPUT';

/** A refusal by a strategy; the message names what was wrong. */
export class StrategyError extends Error {
  constructor(
    readonly code: StrategyErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StrategyError';
  }
}
