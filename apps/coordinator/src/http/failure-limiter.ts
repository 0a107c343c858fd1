import { ipKeyGenerator, MemoryStore } from 'express-rate-limit';

/** How many failures an address may have in a window before it is refused. */
export interface FailureLimit {
  /** Failures allowed per window and address; the next request gets 429. */
  limit: number;
  windowMs: number;
}

export const DEFAULT_FAILURE_LIMIT: FailureLimit = { limit: 20, windowMs: 60_000 };

/**
 * Counts failed authentications per client address (failed API-token checks, refused enrollments,
 * refused agent logins) in fixed windows, with express-rate-limit's store, and tells when an address
 * has used up its failures. Only failures count, and only once they happened: a burst of valid
 * requests never trips it.
 */
export class FailureLimiter {
  private readonly store = new MemoryStore();

  constructor(readonly opts: FailureLimit = DEFAULT_FAILURE_LIMIT) {
    this.store.init({ windowMs: opts.windowMs } as never);
  }

  /** The key of an address: IPv4 as is, IPv6 by its /56 (one household or host has many). */
  private key(address: string): string {
    return ipKeyGenerator(address || 'unknown');
  }

  /** Seconds until `address` may try again, or 0 when it may now. */
  async retryAfterSeconds(address: string): Promise<number> {
    const info = await this.store.get(this.key(address));
    if (!info || info.totalHits < this.opts.limit) return 0;
    return Math.max(1, Math.ceil(((info.resetTime?.getTime() ?? Date.now()) - Date.now()) / 1000));
  }

  /** Records one failure of `address`. */
  async fail(address: string): Promise<void> {
    await this.store.increment(this.key(address));
  }

  close(): void {
    this.store.shutdown();
  }
}
