import { FederationEntity } from '../db/entities';
import type { CoordinatorContext } from '../http/context';
import { ensureModelBackend } from '../model-backend';
import type { RoundEngine } from './round-engine';

/**
 * Keeps running federations training: one round after another while a federation is running and
 * has a global model; pausing or stopping takes effect between rounds. A failed round (too few
 * sites online, too few survivors) is recorded by the engine and the next one starts after
 * `retrySeconds`.
 */
export class FederationRunner {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly engine: RoundEngine,
    private readonly opts: { intervalMs: number; retrySeconds: number } = {
      intervalMs: 2000,
      retrySeconds: 30,
    },
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 50));
  }

  /**
   * A running federation without a global model gets a freshly initialized one from its model
   * config (seeded by the federation id, so it can be reproduced), unless an admin uploaded one.
   */
  private async initializeModel(f: FederationEntity): Promise<void> {
    await ensureModelBackend();
    const { createInitialModel } = await import('@fedsynth/diffusion');
    const mc = f.modelConfig as { size?: number; channels?: number[]; numResBlocks?: number };
    const plan = f.plan as { prediction?: string; schedule?: string };
    const seed = Number.parseInt(f.id.replace(/-/g, '').slice(0, 8), 16) >>> 0;
    const bytes = await createInitialModel({
      size: Number(mc.size ?? 64),
      channels: mc.channels ?? [32, 64, 80],
      numResBlocks: Number(mc.numResBlocks ?? 2),
      prediction: (plan.prediction ?? 'sample') as 'sample',
      schedule: (plan.schedule ?? 'cosine') as 'cosine',
      seed,
    });
    const sha = await this.ctx.checkpoints.put(bytes, { federationId: f.id });
    await this.ctx.federations.setCheckpoint(f.id, sha);
    f.currentCheckpoint = sha;
    console.log(
      `federation "${f.name}": initialized the global model from its model config (${sha.slice(0, 12)}, ${bytes.length} bytes)`,
    );
  }

  private readonly lastFailure = new Map<string, number>();

  /** One pass: run a round of the first running federation that is due. */
  async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const feds = await this.ctx.db.dataSource.getRepository(FederationEntity).findBy({ status: 'running' });
      for (const f of feds) {
        if (!f.currentCheckpoint) await this.initializeModel(f);
        const failedAt = this.lastFailure.get(f.id) ?? 0;
        if (Date.now() - failedAt < this.opts.retrySeconds * 1000) continue;
        const r = await this.engine.runRound(f.id);
        if (r.stage !== 'completed') this.lastFailure.set(f.id, Date.now());
        break;
      }
    } catch (err) {
      console.error(`round runner: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }
}
