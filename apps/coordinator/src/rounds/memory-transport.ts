import {
  MAX_CHUNK_BYTES,
  type MessageName,
  type ParticipantSession,
  type ParticipantTransport,
  parseMessage,
} from '@fedsynth/protocol';
import type { RoundTransport } from './round-transport';
import type { SecureRound } from './secure-round';

/**
 * A round without sockets or a database: participant sessions (libs/protocol) and a SecureRound
 * exchange messages in memory, each delivery on its own macrotask as a network would, so
 * protocol-level round tests run in a second. `cut(index)` makes a participant vanish (no more
 * messages either way), as a site that drops out.
 */
export class MemoryTransport implements RoundTransport {
  private readonly sessions = new Map<number, ParticipantSession>();
  private readonly gone = new Set<number>();
  private round: SecureRound | null = null;

  constructor(
    /** Models sites may fetch, by sha256. */
    private readonly models: Map<string, Uint8Array>,
  ) {}

  /** Connects participant `index`'s session; returns the transport its session sends through. */
  join(index: number, session: ParticipantSession): void {
    this.sessions.set(index, session);
  }

  /** The participant side of `index`'s link (give it to the session's constructor). */
  participantSide(index: number): ParticipantTransport {
    return {
      send: (event, payload) => void this.fromParticipant(index, event, payload).catch(() => undefined),
      sendWithAck: async (event, payload) => {
        await this.fromParticipant(index, event, payload);
      },
    };
  }

  /** The round messages go to. */
  attach(round: SecureRound): void {
    this.round = round;
  }

  cut(index: number): void {
    this.gone.add(index);
    this.round?.disconnected(index);
  }

  send(index: number, event: string, payload: unknown): void {
    const s = this.sessions.get(index);
    if (!s || this.gone.has(index)) return;
    setImmediate(() => void s.receive(event, payload));
  }

  connected(index: number): boolean {
    return this.sessions.has(index) && !this.gone.has(index);
  }

  private async fromParticipant(index: number, event: string, payload: unknown): Promise<void> {
    await new Promise((r) => setImmediate(r));
    const r = this.round;
    if (!r || this.gone.has(index)) throw new Error('disconnected');
    // What the gateway does with every message: validate it against its schema.
    parseMessage(event as MessageName, payload);
    switch (event) {
      case 'blob.request': {
        const req = parseMessage('blob.request', payload);
        const bytes = this.models.get(req.sha256);
        if (!bytes)
          return this.send(index, 'protocol.error', {
            code: 'NOT_FOUND',
            message: 'no model',
            ref: req.sha256,
          });
        for (let o = req.offset; o < bytes.length; o += MAX_CHUNK_BYTES)
          this.send(index, 'blob.chunk', {
            transferId: req.sha256,
            offset: o,
            total: bytes.length,
            data: bytes.subarray(o, o + MAX_CHUNK_BYTES),
          });
        return;
      }
      case 'secagg.advertise':
        return r.receiveStage(index, event, parseMessage(event, payload));
      case 'secagg.shares':
        return r.receiveStage(index, event, parseMessage(event, payload));
      case 'secagg.consistency':
        return r.receiveStage(index, event, parseMessage(event, payload));
      case 'secagg.unmask':
        return r.receiveStage(index, event, parseMessage(event, payload));
      case 'secagg.masked-chunk':
        return r.receiveChunk(index, parseMessage(event, payload));
      case 'round.train-report':
        return r.trainReport(index, parseMessage(event, payload));
      case 'train.failed':
        return r.trainFailed(index, parseMessage(event, payload).reason);
      case 'round.eval-report':
        return r.evalReport(index, parseMessage(event, payload));
      case 'round.reply':
        if (!parseMessage(event, payload).accept) r.declined(index);
        return;
      default:
        return;
    }
  }
}
