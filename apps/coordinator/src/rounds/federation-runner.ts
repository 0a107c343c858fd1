import { formatTask } from '@fedsynth/imaging';
import type { FederationConfig } from '@fedsynth/protocol';
import { FederationConfigError, taskChannels } from '@fedsynth/protocol';
import { FederationEntity } from '../db/entities';
import type { CoordinatorContext } from '../http/context';
import { log } from '../logging/logger';
import { ensureModelBackend } from '../model-backend';
import { federationOverBudget } from './privacy-budget';
import type { RoundEngine } from './round-engine';

/** How the runner paces rounds. */
export interface RunnerOptions {
  intervalMs: number;
  /** Wait after a failed round before the federation's next. */
  retrySeconds: number;
  /** Rounds in progress at once, over all federations (each federation runs one at a time). */
  maxConcurrentRounds?: number;
}

/**
 * Keeps running federations training, side by side: every federation that is running, has no
 * round in progress and is not waiting out a failure gets its next round, up to a global cap of
 * rounds at once. A federation whose stored configuration no longer parses is paused with the
 * reason (an admin mends it with PATCH and resumes); nothing one federation does stops the others.
 */
export class FederationRunner {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly lastFailure = new Map<string, number>();

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly engine: RoundEngine,
    private readonly opts: RunnerOptions = { intervalMs: 2000, retrySeconds: 30 },
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
  }

  /** Resolves when the rounds in progress have ended. */
  async idle(): Promise<void> {
    await Promise.allSettled(this.inFlight.values());
  }

  /** Stops starting rounds and waits for the ones in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 50));
    await this.idle();
  }

  /**
   * A running federation without a global model gets a freshly initialized one from its model
   * config (seeded by the federation id, so it can be reproduced), unless an admin uploaded one.
   */
  private async initializeModel(f: FederationEntity, config: FederationConfig): Promise<void> {
    await ensureModelBackend();
    const { createInitialModel } = await import('@fedsynth/diffusion');
    const seed = Number.parseInt(f.id.replace(/-/g, '').slice(0, 8), 16) >>> 0;
    const bytes = await createInitialModel({
      size: config.model.size,
      channels: config.model.channels,
      numResBlocks: config.model.numResBlocks,
      prediction: config.plan.prediction,
      schedule: config.plan.schedule,
      seed,
      task: formatTask(config.task),
      conditionChannels: taskChannels(config.task),
    });
    const sha = await this.ctx.checkpoints.put(bytes, { federationId: f.id });
    if (!(await this.ctx.federations.setInitialCheckpoint(f.id, sha))) return;
    log('rounds').info(
      { federationId: f.id, federation: f.name, sha256: sha, bytes: bytes.length },
      'initialized the global model from the model config',
    );
  }

  /** A federation's next round, from start to end; failures are remembered for the retry wait. */
  private async runOne(f: FederationEntity, config: FederationConfig): Promise<void> {
    try {
      if (!f.currentCheckpoint) await this.initializeModel(f, config);
      const r = await this.engine.runRound(f.id);
      if (r.stage !== 'completed') this.lastFailure.set(f.id, Date.now());
      log('rounds')[r.stage === 'completed' ? 'info' : 'warn'](
        {
          federationId: f.id,
          federation: f.name,
          round: r.number,
          stage: r.stage,
          durationMs: new Date(r.finishedAt ?? Date.now()).getTime() - new Date(r.startedAt).getTime(),
          sites: r.participants?.length ?? 0,
          dropouts: r.dropouts?.length ?? 0,
          ...(r.error ? { error: r.error } : {}),
          ...(r.checkpointOut ? { checkpoint: r.checkpointOut } : {}),
        },
        `round ${r.number} ${r.stage}`,
      );
    } catch (err) {
      this.lastFailure.set(f.id, Date.now());
      log('rounds').error({ err, federationId: f.id, federation: f.name }, 'the round could not run');
    }
  }

  /** One pass: start a round for every running federation that is due, up to the cap. */
  async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const feds = await this.ctx.db.dataSource.getRepository(FederationEntity).findBy({ status: 'running' });
      const cap = this.opts.maxConcurrentRounds ?? 4;
      for (const f of feds) {
        if (this.inFlight.size >= cap) break;
        if (this.inFlight.has(f.id)) continue;
        if (Date.now() - (this.lastFailure.get(f.id) ?? 0) < this.opts.retrySeconds * 1000) continue;
        let config: FederationConfig;
        try {
          config = this.ctx.federations.configOf(f);
        } catch (err) {
          if (!(err instanceof FederationConfigError)) throw err;
          const reason = `its configuration is invalid: ${err.problems.join('; ')}`;
          if (await this.ctx.federations.haltWithReason(f.id, 'paused', reason))
            log('rounds').warn({ federationId: f.id, federation: f.name, reason }, 'federation paused');
          continue;
        }
        const overBudget = await federationOverBudget(this.ctx, f.id, config);
        if (overBudget) {
          if (await this.ctx.federations.haltWithReason(f.id, 'stopped', overBudget))
            log('rounds').warn(
              { federationId: f.id, federation: f.name, reason: overBudget },
              'federation stopped',
            );
          continue;
        }
        const run = this.runOne(f, config).finally(() => this.inFlight.delete(f.id));
        this.inFlight.set(f.id, run);
      }
    } catch (err) {
      log('rounds').error({ err }, 'the round runner failed');
    } finally {
      this.busy = false;
    }
  }
}
