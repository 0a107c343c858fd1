import { MAX_CHUNK_BYTES, type Message } from '@fedsynth/protocol';
import type { DataSource } from 'typeorm';
import type { CheckpointStore } from '../checkpoints/checkpoint-store';
import type { AgentSession } from '../gateway/agent-gateway';
import { log } from '../logging/logger';

/**
 * Serves models to sites in 1 MiB chunks (resumable from an offset), only the ones a site may have:
 * the input or output of a round it takes part in now, its federation's current model, or a model
 * its federation's completed rounds took in or produced; never another federation's, whatever its
 * hash, and an unknown hash gets the same answer as a forbidden one. The models of the rounds in
 * progress are read and verified once, not once per site that asks.
 */
export class ModelServer {
  private readonly hot = new Map<string, Uint8Array>();

  constructor(
    private readonly store: CheckpointStore,
    private readonly ds: DataSource,
    /** The models of the round a site takes part in now (input and, once there is one, output). */
    private readonly inFlight: (session: AgentSession) => string[],
    /** Counts bytes sent to a federation's current round. */
    private readonly countOut: (session: AgentSession, bytes: number) => void,
    private readonly hotModels = 4,
  ) {}

  /** The bytes of a model, verified against its hash (cached while rounds use it). */
  async bytes(sha: string): Promise<Uint8Array> {
    let b = this.hot.get(sha);
    if (!b) {
      b = await this.store.get(sha);
      this.keep(sha, b);
    }
    return b;
  }

  /** Keeps a model's bytes at hand (the newest few). */
  keep(sha: string, bytes: Uint8Array): void {
    this.hot.delete(sha);
    this.hot.set(sha, bytes);
    while (this.hot.size > this.hotModels) this.hot.delete(this.hot.keys().next().value as string);
  }

  private async mayFetch(s: AgentSession, sha: string): Promise<boolean> {
    if (this.inFlight(s).includes(sha)) return true;
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM federations WHERE id = $1 AND (current_checkpoint = $2 OR current_model = $2)
       UNION ALL
       SELECT 1 FROM rounds WHERE federation_id = $1 AND stage = 'completed'
         AND (checkpoint_in = $2 OR checkpoint_out = $2 OR model_out = $2)
       LIMIT 1`,
      [s.federationId, sha],
    );
    return rows.length > 0;
  }

  /** Answers a site's `blob.request`: chunks from the requested offset, or NOT_FOUND. */
  async serve(s: AgentSession, m: Message<'blob.request'>): Promise<void> {
    const notFound = (): void => {
      s.socket.emit('protocol.error', {
        code: 'NOT_FOUND',
        message: `no model ${m.sha256} for this site`,
        ref: m.sha256,
      });
    };
    if (!(await this.mayFetch(s, m.sha256))) return notFound();
    let bytes: Uint8Array;
    try {
      bytes = await this.bytes(m.sha256);
    } catch (err) {
      log('gateway').error(
        { err, sha256: m.sha256, siteId: s.siteId, federationId: s.federationId },
        'serving a model failed',
      );
      return notFound();
    }
    for (let o = m.offset; o < bytes.length; o += MAX_CHUNK_BYTES) {
      const data = bytes.subarray(o, Math.min(bytes.length, o + MAX_CHUNK_BYTES));
      s.socket.emit('blob.chunk', { transferId: m.sha256, offset: o, total: bytes.length, data });
      this.countOut(s, data.length);
    }
  }
}
