/**
 * Waits for the participants of one stage to answer, up to the stage's deadline. Participants that
 * gave up (their training failed) or were revoked are never waited for again; a refused answer to
 * the message being awaited counts as that participant's answer (it will not send a better one).
 */
export class StageCollector {
  private waiting: { pending: Set<number>; event: string; done: () => void } | null = null;
  /** Participants no stage waits for any more. */
  readonly excluded = new Set<number>();

  /** The message the current stage waits for, if one is waiting. */
  get awaiting(): string | null {
    return this.waiting?.event ?? null;
  }

  /** Resolves when every participant answered `event` or after `timeoutMs`, whichever comes first. */
  collect(participants: Iterable<number>, timeoutMs: number, event: string): Promise<void> {
    return new Promise((resolve) => {
      const pending = new Set([...participants].filter((i) => !this.excluded.has(i)));
      const done = () => {
        clearTimeout(timer);
        this.waiting = null;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiting = { pending, event, done };
      if (pending.size === 0) done();
    });
  }

  /** Participant `index` has answered the current stage (or will not). */
  answered(index: number): void {
    const w = this.waiting;
    if (!w) return;
    w.pending.delete(index);
    if (w.pending.size === 0) w.done();
  }

  /** Participant `index` will not answer any stage from now on. */
  exclude(index: number): void {
    this.excluded.add(index);
    this.answered(index);
  }

  /** A message of participant `index` was refused; it answers the stage when it is the awaited one. */
  refused(index: number, event: string): void {
    if (this.waiting?.event === event) this.answered(index);
  }
}
