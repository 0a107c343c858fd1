/**
 * At most `limit` masked uploads are received at once. The server keeps each upload's chunks until
 * it is complete (so that a site dropping mid-upload can be taken back out exactly); a site beyond
 * the limit waits for its first chunk's acknowledgement, which bounds memory to about `limit`
 * model vectors however many sites upload.
 */
export class UploadSlots {
  private readonly holding = new Set<number>();
  private readonly queue: { index: number; grant: () => void }[] = [];
  private readonly granted = new Map<number, Promise<void>>();
  /** Most uploads held at once. */
  peak = 0;

  constructor(private readonly limit: number) {}

  /** Resolves once participant `index` holds a slot (at once when one is free or it holds one). */
  acquire(index: number): Promise<void> {
    const pending = this.granted.get(index);
    if (pending) return pending;
    let p: Promise<void>;
    if (this.holding.size < this.limit) {
      this.take(index);
      p = Promise.resolve();
    } else {
      p = new Promise<void>((grant) => this.queue.push({ index, grant }));
    }
    this.granted.set(index, p);
    return p;
  }

  private take(index: number): void {
    this.holding.add(index);
    this.peak = Math.max(this.peak, this.holding.size);
  }

  /** Frees a participant's slot (complete, refused or gone) and grants it to the next in line. */
  release(index: number): void {
    this.granted.delete(index);
    const queued = this.queue.findIndex((q) => q.index === index);
    if (queued >= 0) this.queue.splice(queued, 1)[0].grant();
    if (!this.holding.delete(index)) return;
    const next = this.queue.shift();
    if (next) {
      this.take(next.index);
      next.grant();
    }
  }

  /** At the stage deadline: lets everyone still waiting go (they are dropouts; their handlers end). */
  releaseAll(): void {
    for (const q of this.queue.splice(0)) q.grant();
  }
}
