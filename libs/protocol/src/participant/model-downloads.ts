import { ChunkReceiver, TransferError } from '../chunked';
import type { Message } from '../schemas';

interface Download {
  receiver: ChunkReceiver;
  waiters: { resolve: (bytes: Uint8Array) => void; reject: (err: Error) => void }[];
}

/**
 * Models fetched from the coordinator by sha256 (the transfer id of their `blob.chunk`s): asked for
 * from an offset, taken chunk by chunk in order into one buffer (ChunkReceiver), and verified against
 * the hash once complete. After a reconnect every unfinished download asks for the rest from the
 * bytes it already has. Two fetches of the same model share one download.
 */
export class ModelDownloads {
  private readonly active = new Map<string, Download>();

  /**
   * @param request sends a `blob.request`
   * @param maxBytes the largest model this site accepts (a larger announced size is refused at once)
   */
  constructor(
    private readonly request: (m: Message<'blob.request'>) => void,
    private readonly maxBytes: number,
  ) {}

  /** The verified bytes of model `sha256` of `size` bytes. */
  fetch(sha256: string, size: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const existing = this.active.get(sha256);
      if (existing) {
        existing.waiters.push({ resolve, reject });
        return;
      }
      let receiver: ChunkReceiver;
      try {
        receiver = new ChunkReceiver(sha256, size, sha256, this.maxBytes);
      } catch (err) {
        reject(err as Error);
        return;
      }
      this.active.set(sha256, { receiver, waiters: [{ resolve, reject }] });
      this.request({ sha256, offset: 0 });
    });
  }

  /**
   * Takes a chunk of a download; one that does not fit (out of order, oversize, another size) or a
   * completed payload whose sha256 differs ends that download with the TransferError.
   * @returns false when no download wants the chunk
   */
  receive(chunk: Message<'blob.chunk'>): boolean {
    const d = this.active.get(chunk.transferId);
    if (!d) return false;
    try {
      d.receiver.accept({ ...chunk, data: new Uint8Array(chunk.data) });
      if (d.receiver.complete) this.settle(chunk.transferId, d.receiver.result());
    } catch (err) {
      this.settle(chunk.transferId, err as Error);
    }
    return true;
  }

  /**
   * The coordinator refused model `sha256` (a `protocol.error` naming it as its ref): that download ends.
   * @returns false when no download of that model is running
   */
  refuse(sha256: string, why: string): boolean {
    if (!this.active.has(sha256)) return false;
    this.settle(sha256, new TransferError('BAD_CHUNK', `the coordinator refused model ${sha256}: ${why}`));
    return true;
  }

  /** After a reconnect: asks for the rest of every unfinished download, from the bytes received. */
  resume(): void {
    for (const [sha256, d] of this.active) this.request({ sha256, offset: d.receiver.offset });
  }

  /** Downloads in progress and the bytes each has. */
  get pending(): { sha256: string; offset: number }[] {
    return [...this.active].map(([sha256, d]) => ({ sha256, offset: d.receiver.offset }));
  }

  private settle(sha256: string, outcome: Uint8Array | Error): void {
    const d = this.active.get(sha256);
    if (!d) return;
    this.active.delete(sha256);
    for (const w of d.waiters) {
      if (outcome instanceof Error) w.reject(outcome);
      else w.resolve(outcome);
    }
  }
}
