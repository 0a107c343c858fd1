import { describe, expect, it } from 'vitest';
import { canTransition, isFinal, ROUND_STAGES, type RoundStage, RoundState } from './round-state';

const ALL: RoundStage[] = [...ROUND_STAGES, 'failed', 'aborted'];

describe('round state machine', () => {
  it('allows exactly: the next stage, or failed/aborted from a stage that is not final', () => {
    for (const from of ALL) {
      for (const to of ALL) {
        const i = ROUND_STAGES.indexOf(from as (typeof ROUND_STAGES)[number]);
        const expected =
          !isFinal(from) && (to === 'failed' || to === 'aborted' || (i >= 0 && ROUND_STAGES[i + 1] === to));
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(expected);
        const s = new RoundState(from);
        if (expected) {
          s.advance(to);
          expect(s.stage).toBe(to);
        } else {
          expect(() => s.advance(to)).toThrow(`a round cannot go from ${from} to ${to}`);
          expect(s.stage).toBe(from);
        }
      }
    }
  });

  it('records the path with times and the reason of a failure', () => {
    const s = new RoundState('selecting', [{ stage: 'selecting', at: new Date('2026-01-01T00:00:00Z') }]);
    s.advance('advertise-keys', new Date('2026-01-01T00:00:05Z'));
    s.end(
      'failed',
      'only 1 site completed advertise-keys; the threshold is 2',
      new Date('2026-01-01T00:02:05Z'),
    );
    expect(s.stageTimes()).toEqual({
      selecting: '2026-01-01T00:00:00.000Z',
      'advertise-keys': '2026-01-01T00:00:05.000Z',
      failed: '2026-01-01T00:02:05.000Z',
    });
    expect(s.reason).toMatch(/threshold is 2/);
    expect(() => s.advance('aborted')).toThrow(/cannot go from failed/);
  });
});
