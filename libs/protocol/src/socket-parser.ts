import { Decoder as BaseDecoder, Encoder, PacketType } from 'socket.io-parser';
import { type ConnectionLimits, PRE_LOGIN_LIMITS } from './message-limits';

/**
 * Binary attachments one socket.io message may carry. socket.io's default (10) is below what a
 * secure-aggregation roster or unmask message holds (four keys per neighbour, one share per peer),
 * so both ends use this parser. Message size stays bounded by maxHttpBufferSize.
 */
export const MAX_ATTACHMENTS = 100_000;

class Decoder extends BaseDecoder {
  constructor() {
    super({ maxAttachments: MAX_ATTACHMENTS });
  }
}

/** The parser of the agents (`{ parser: socketParser }`): what the coordinator sends them. */
export const socketParser = { Encoder, Decoder };

/** A refusal of the limited decoder; the connection that sent it is closed. */
export class MessageLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageLimitError';
  }
}

interface Reconstructing {
  reconPack: { type: number; data?: unknown[]; attachments: number };
}

/**
 * A socket.io decoder that bounds what one connection can make the coordinator hold. socket.io's
 * own limit (maxHttpBufferSize) applies to one frame, and a message announces its binary
 * attachments up front and then sends them frame by frame, each kept until the last arrives: a
 * message announcing 99,999 attachments would collect gigabytes. This decoder checks the
 * announced count against the event's limit as soon as the text part arrives, and the bytes of
 * each attachment as it arrives, and throws (socket.io then closes the connection) at the first
 * excess. It starts with the pre-login limits; the gateway raises them for a logged-in agent.
 */
export class LimitedDecoder extends BaseDecoder {
  private limits: ConnectionLimits = PRE_LOGIN_LIMITS;
  private pending: { event: string; left: number } | null = null;
  /**
   * Called with the reason before a refusal is thrown: the owner cuts the connection at once (a
   * graceful websocket close would go on reading whatever the client keeps sending).
   */
  onRefused: ((reason: string) => void) | null = null;

  constructor() {
    super({ maxAttachments: MAX_ATTACHMENTS });
  }

  /** Limits for the rest of this connection (after login). */
  setLimits(limits: ConnectionLimits): void {
    this.limits = limits;
  }

  /** The message being reassembled (socket.io-parser keeps it in a private field). */
  private building(): Reconstructing | null {
    return (this as unknown as { reconstructor: Reconstructing | null }).reconstructor ?? null;
  }

  private refuse(message: string): never {
    (this as unknown as { reconstructor: unknown }).reconstructor = null;
    this.pending = null;
    this.onRefused?.(message);
    throw new MessageLimitError(message);
  }

  override add(obj: unknown): void {
    if (typeof obj === 'string') {
      if (obj.length > this.limits.maxTextChars)
        this.refuse(`a packet of ${obj.length} characters; at most ${this.limits.maxTextChars} are accepted`);
      super.add(obj);
      const r = this.building();
      if (r) {
        const p = r.reconPack;
        const event = p.type === PacketType.EVENT && Array.isArray(p.data) ? String(p.data[0]) : '(ack)';
        const limit = this.limits.attachments(event);
        if (p.attachments > limit.attachments)
          this.refuse(
            `"${event}" announces ${p.attachments} binary attachments; at most ${limit.attachments} are accepted`,
          );
        this.pending = { event, left: limit.attachmentBytes };
      }
      return;
    }
    if (this.pending) {
      const size =
        obj instanceof ArrayBuffer || ArrayBuffer.isView(obj)
          ? (obj as ArrayBufferView).byteLength
          : Infinity;
      this.pending.left -= size;
      if (this.pending.left < 0)
        this.refuse(`"${this.pending.event}" carries more binary data than such a message may`);
    }
    super.add(obj);
    if (!this.building()) this.pending = null;
  }
}

/**
 * The coordinator's parser: every connection decodes through a LimitedDecoder, and `created` sees
 * each one as socket.io makes it (synchronously, while it sets up the connection), so the owner
 * can tie it to that connection.
 */
export function createGatewayParser(created: (decoder: LimitedDecoder) => void): {
  Encoder: typeof Encoder;
  Decoder: new () => LimitedDecoder;
} {
  return {
    Encoder,
    Decoder: class extends LimitedDecoder {
      constructor() {
        super();
        created(this);
      }
    },
  };
}
