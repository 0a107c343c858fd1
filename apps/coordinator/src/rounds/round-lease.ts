import { Client } from 'pg';
import { log } from '../logging/logger';

/** The advisory-lock key of the round lease (per database): "fedsynth rounds". */
export const ROUND_LEASE_KEY = 0x6665_6473;

/**
 * Among coordinator replicas, exactly one drives the rounds: the one holding a PostgreSQL
 * session-level advisory lock on its own connection. When that process dies its connection
 * closes, PostgreSQL releases the lock, and the next replica to poll takes over.
 */
export class RoundLease {
  private readonly client: Client;
  private timer: NodeJS.Timeout | null = null;
  held = false;

  constructor(
    databaseUrl: string,
    private readonly pollMs = 2000,
  ) {
    this.client = new Client({ connectionString: databaseUrl });
    this.client.on('error', (err) => {
      // Without its connection the lease is gone: stop at once rather than drive without it.
      log('rounds').fatal({ err }, 'round lease: lost the database connection; exiting');
      process.exit(1);
    });
  }

  /** Polls until this process holds the lease, then calls `onAcquire` once. */
  async start(onAcquire: () => Promise<void>): Promise<void> {
    await this.client.connect();
    const poll = async () => {
      this.timer = null;
      const r = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
        ROUND_LEASE_KEY,
      ]);
      if (r.rows[0]?.ok) {
        this.held = true;
        await onAcquire();
        return;
      }
      this.timer = setTimeout(() => void poll(), this.pollMs);
    };
    await poll();
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.client.end().catch(() => undefined);
  }
}
