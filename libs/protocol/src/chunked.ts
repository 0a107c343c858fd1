import { createHash } from 'node:crypto';
import { CHUNK_ELEMENTS } from '@fedsynth/secure-agg';

/**
 * Largest chunk of a transfer, 1 MiB: one chunk of libs/secure-agg's masked vector (CHUNK_ELEMENTS
 * 32-bit elements), so a masked upload sends each chunk the client produces as one message. socket.io
 * drops messages above maxHttpBufferSize, which the coordinator sets above this.
 */
export const MAX_CHUNK_BYTES = CHUNK_ELEMENTS * Uint32Array.BYTES_PER_ELEMENT;

/** One piece of a large binary (a checkpoint, a masked vector), acknowledged by the receiver. */
export interface Chunk {
  transferId: string;
  /** Byte offset of `data` in the whole payload. */
  offset: number;
  /** Size of the whole payload in bytes. */
  total: number;
  data: Uint8Array;
}

/** Problems with a transfer; the message names the transfer and what went wrong. */
export class TransferError extends Error {
  constructor(
    readonly code:
      | 'OUT_OF_ORDER'
      | 'TOO_LARGE'
      | 'SIZE_MISMATCH'
      | 'HASH_MISMATCH'
      | 'BAD_CHUNK'
      | 'INCOMPLETE',
    message: string,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/** Lower-case hex sha256 of bytes. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Sends a payload as chunks of at most `chunkSize` bytes. Chunks are produced from the last
 * acknowledged offset, so after a reconnect `resumeFrom(ackedOffset)` continues where the receiver
 * stopped instead of starting over.
 */
export class ChunkSender {
  readonly total: number;
  readonly sha256: string;
  private acked = 0;

  constructor(
    readonly transferId: string,
    private readonly payload: Uint8Array,
    private readonly chunkSize = MAX_CHUNK_BYTES,
  ) {
    if (!(Number.isInteger(chunkSize) && chunkSize > 0 && chunkSize <= MAX_CHUNK_BYTES)) {
      throw new RangeError(`chunk size must be an integer in [1, ${MAX_CHUNK_BYTES}], got ${chunkSize}`);
    }
    this.total = payload.length;
    this.sha256 = sha256Hex(payload);
  }

  /** Bytes the receiver has confirmed. */
  get acknowledged(): number {
    return this.acked;
  }

  /** Records the receiver's acknowledgement of everything before `offset`. */
  ack(offset: number): void {
    if (!(Number.isInteger(offset) && offset >= this.acked && offset <= this.total)) {
      throw new TransferError(
        'BAD_CHUNK',
        `transfer ${this.transferId}: acknowledgement of offset ${offset} is not in [${this.acked}, ${this.total}]`,
      );
    }
    this.acked = offset;
  }

  /** Restarts production at an acknowledged offset (after a reconnect the receiver says where it is). */
  resumeFrom(offset: number): void {
    if (!(Number.isInteger(offset) && offset >= 0 && offset <= this.total)) {
      throw new TransferError(
        'BAD_CHUNK',
        `transfer ${this.transferId}: cannot resume from ${offset} of ${this.total}`,
      );
    }
    this.acked = offset;
  }

  /** The chunks from the last acknowledged offset to the end (a zero-byte payload is one empty chunk). */
  *chunks(): Generator<Chunk> {
    if (this.total === 0) {
      yield { transferId: this.transferId, offset: 0, total: 0, data: new Uint8Array(0) };
      return;
    }
    for (let o = this.acked; o < this.total; o += this.chunkSize) {
      yield {
        transferId: this.transferId,
        offset: o,
        total: this.total,
        data: this.payload.subarray(o, Math.min(this.total, o + this.chunkSize)),
      };
    }
  }
}

/**
 * Receives a payload chunk by chunk, in order, into one preallocated buffer, and verifies its size
 * and sha256 at the end. Duplicate chunks (a retransmission after a lost ack) are ignored; gaps,
 * overlaps past what was received, and oversize payloads are refused.
 */
export class ChunkReceiver {
  private readonly buf: Uint8Array;
  private received = 0;

  constructor(
    readonly transferId: string,
    readonly expectedSize: number,
    readonly expectedSha256: string,
    readonly maxBytes = Number.MAX_SAFE_INTEGER,
  ) {
    if (!(Number.isInteger(expectedSize) && expectedSize >= 0))
      throw new TransferError('SIZE_MISMATCH', `transfer ${transferId}: bad expected size ${expectedSize}`);
    if (expectedSize > maxBytes)
      throw new TransferError(
        'TOO_LARGE',
        `transfer ${transferId}: ${expectedSize} bytes exceed the limit of ${maxBytes}`,
      );
    if (!/^[0-9a-f]{64}$/.test(expectedSha256))
      throw new TransferError(
        'BAD_CHUNK',
        `transfer ${transferId}: expected sha256 is not 64 hex characters`,
      );
    this.buf = new Uint8Array(expectedSize);
  }

  /** Bytes received so far: what to acknowledge, and where a resumed sender should continue. */
  get offset(): number {
    return this.received;
  }

  get complete(): boolean {
    return this.received === this.expectedSize;
  }

  /** Accepts the next chunk; returns the offset to acknowledge. */
  accept(chunk: Chunk): number {
    const id = this.transferId;
    if (chunk.transferId !== id)
      throw new TransferError('BAD_CHUNK', `chunk of transfer ${chunk.transferId} sent to transfer ${id}`);
    if (chunk.total !== this.expectedSize)
      throw new TransferError(
        'SIZE_MISMATCH',
        `transfer ${id}: chunk says the payload has ${chunk.total} bytes, ${this.expectedSize} were announced`,
      );
    if (!(chunk.data instanceof Uint8Array) || chunk.data.length > MAX_CHUNK_BYTES) {
      throw new TransferError(
        'TOO_LARGE',
        `transfer ${id}: chunk at ${chunk.offset} is larger than ${MAX_CHUNK_BYTES} bytes or not binary`,
      );
    }
    const end = chunk.offset + chunk.data.length;
    if (end <= this.received && chunk.offset < this.received) return this.received; // a retransmission
    if (chunk.offset !== this.received)
      throw new TransferError(
        'OUT_OF_ORDER',
        `transfer ${id}: chunk at offset ${chunk.offset}, expected ${this.received}`,
      );
    if (end > this.expectedSize)
      throw new TransferError(
        'TOO_LARGE',
        `transfer ${id}: chunk ends at ${end}, past the announced ${this.expectedSize} bytes`,
      );
    this.buf.set(chunk.data, chunk.offset);
    this.received = end;
    return this.received;
  }

  /** The verified payload; throws when it is incomplete or its sha256 differs. */
  result(): Uint8Array {
    if (!this.complete)
      throw new TransferError(
        'INCOMPLETE',
        `transfer ${this.transferId}: ${this.received} of ${this.expectedSize} bytes received`,
      );
    const got = sha256Hex(this.buf);
    if (got !== this.expectedSha256)
      throw new TransferError(
        'HASH_MISMATCH',
        `transfer ${this.transferId}: sha256 ${got} differs from the announced ${this.expectedSha256}`,
      );
    return this.buf;
  }
}
