import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

/**
 * The persisted stages of a round, in order. A round moves forward one stage at a time, or ends as
 * failed (too few survivors, a refused message, a deadline with too few answers) or aborted (the
 * coordinator restarted while it ran). completed, failed and aborted are final.
 */
export const ROUND_STAGES = [
  'selecting',
  'advertise-keys',
  'share-keys',
  'masked-input',
  'consistency-check',
  'unmask',
  'applying',
  'evaluating',
  'completed',
] as const;
export type RoundStage = (typeof ROUND_STAGES)[number] | 'failed' | 'aborted';

const FINAL: RoundStage[] = ['completed', 'failed', 'aborted'];

/** Whether a stage is final. */
export function isFinal(stage: RoundStage): boolean {
  return FINAL.includes(stage);
}

/** Whether `from -> to` is legal: the next stage, or failed/aborted from any stage that is not final. */
export function canTransition(from: RoundStage, to: RoundStage): boolean {
  if (isFinal(from)) return false;
  if (to === 'failed' || to === 'aborted') return true;
  const i = ROUND_STAGES.indexOf(from as (typeof ROUND_STAGES)[number]);
  return i >= 0 && ROUND_STAGES[i + 1] === to;
}

/** A round's stage with its history; every change is checked. */
export class RoundState {
  private current: RoundStage;
  readonly history: { stage: RoundStage; at: Date }[];
  reason: string | null = null;

  constructor(stage: RoundStage = 'selecting', history?: { stage: RoundStage; at: Date }[]) {
    this.current = stage;
    this.history = history ?? [{ stage, at: new Date() }];
  }

  get stage(): RoundStage {
    return this.current;
  }

  /** Moves to `to`, or throws ILLEGAL_TRANSITION naming both stages. */
  advance(to: RoundStage, at = new Date()): void {
    if (!canTransition(this.current, to)) {
      throw new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `a round cannot go from ${this.current} to ${to}`,
      );
    }
    this.current = to;
    this.history.push({ stage: to, at });
  }

  /** Ends the round as failed or aborted with its reason. */
  end(how: 'failed' | 'aborted', reason: string, at = new Date()): void {
    this.advance(how, at);
    this.reason = reason;
  }

  /** Stage start times by stage (for the rounds table). */
  stageTimes(): Record<string, string> {
    return Object.fromEntries(this.history.map((h) => [h.stage, h.at.toISOString()]));
  }
}
