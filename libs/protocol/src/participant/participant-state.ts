/**
 * Where a site stands in a round, as its participant session tracks it:
 *
 *   idle -> round-accepted -> keys-advertised -> shares-sent -> sending-masked-input
 *        -> masked-input-sent -> consistency-signed -> unmasked -> evaluating -> done
 *
 * (a round whose start lists `metrics` ends at `unmasked`: its figures went in the masked vector)
 * and `failed` from any state of a round (a refused stage message, failed training or upload, a
 * lost connection, another round started). A round start is taken in every state: the coordinator
 * runs one round at a time, so a new start ends the previous round.
 */
export type ParticipantState =
  | 'idle'
  | 'round-accepted'
  | 'keys-advertised'
  | 'shares-sent'
  | 'sending-masked-input'
  | 'masked-input-sent'
  | 'consistency-signed'
  | 'unmasked'
  | 'evaluating'
  | 'done'
  | 'failed';

/** Every state, in the order a round goes through them (`failed` last). */
export const PARTICIPANT_STATES: readonly ParticipantState[] = [
  'idle',
  'round-accepted',
  'keys-advertised',
  'shares-sent',
  'sending-masked-input',
  'masked-input-sent',
  'consistency-signed',
  'unmasked',
  'evaluating',
  'done',
  'failed',
];

/**
 * The coordinator's round messages and the one state each is taken in; in any other state the
 * session refuses it (with a log line) and nothing changes.
 */
export const ROUND_MESSAGE_STATE = {
  'secagg.roster': 'keys-advertised',
  'secagg.inbox': 'shares-sent',
  'secagg.survivors': 'masked-input-sent',
  'secagg.consistency-result': 'consistency-signed',
  'round.evaluate': 'unmasked',
} as const satisfies Record<string, ParticipantState>;

export type RoundMessageName = keyof typeof ROUND_MESSAGE_STATE;

/** States part-way through a round's secure aggregation: a lost connection or a new round ends them. */
export function inAggregation(state: ParticipantState): boolean {
  return (
    state === 'round-accepted' ||
    state === 'keys-advertised' ||
    state === 'shares-sent' ||
    state === 'sending-masked-input' ||
    state === 'masked-input-sent' ||
    state === 'consistency-signed'
  );
}
