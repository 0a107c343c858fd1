import type { Message } from '@fedsynth/protocol';
import type { CheckpointStore } from '../checkpoints/checkpoint-store';
import type { RoundEntity } from '../db/entities';
import type { AgentGateway, AgentSession } from '../gateway/agent-gateway';
import type { CoordinatorContext } from '../http/context';
import { StrategyStateStore } from '../strategies/strategy-state-store';
import { type ActiveRound, type EngineOptions, runFederationRound } from './federation-round';
import { ModelServer } from './model-server';
import { RoundRecords } from './round-records';

export { type EngineOptions, stageDeadlines } from './federation-round';

const STAGE_EVENTS = ['secagg.advertise', 'secagg.shares', 'secagg.consistency', 'secagg.unmask'] as const;

/**
 * Runs federations' rounds over the agent gateway, several federations at once (each at most one
 * round at a time): routes every agent message to the round of the agent's federation, serves
 * models, and keeps the records. The round itself is runFederationRound; its secure aggregation
 * is SecureRound, which knows nothing of sockets.
 */
export class RoundEngine {
  private readonly active = new Map<string, ActiveRound>();
  /** Federations whose round is being opened (not yet tracked): one round per federation at a time. */
  private readonly starting = new Set<string>();
  private readonly records: RoundRecords;
  readonly models: ModelServer;
  /** Most masked uploads received at once in the last round that ended (the benchmark reports it). */
  lastPeakUploads = 0;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly gateway: AgentGateway,
    private readonly store: CheckpointStore,
    private readonly opts: EngineOptions,
    private readonly strategyStates = new StrategyStateStore(store.directory),
  ) {
    this.records = new RoundRecords(ctx.db.dataSource);
    this.models = new ModelServer(
      store,
      ctx.db.dataSource,
      (s) => {
        const r = this.roundOf(s);
        if (!r?.secure || !r.indexOf.has(s.siteId)) return [];
        return [
          r.secure.config.modelHash,
          ...(r.controlHash ? [r.controlHash] : []),
          ...(r.secure.evaluating ? [r.secure.evaluating] : []),
        ];
      },
      (s, bytes) => {
        const secure = this.roundOf(s)?.secure;
        if (secure) secure.bytesOut += bytes;
      },
    );
    gateway.handle('blob.request', (s, m) => this.models.serve(s, m));
    gateway.handle('round.reply', (s, m) => {
      if (!m.accept) this.route(s, m.roundId, (r, i) => r.declined(i));
    });
    gateway.handle('round.train-report', (s, m) => this.route(s, m.roundId, (r, i) => r.trainReport(i, m)));
    gateway.handle('train.failed', (s, m) => this.route(s, m.roundId, (r, i) => r.trainFailed(i, m.reason)));
    gateway.handle('round.eval-report', (s, m) => this.route(s, m.roundId, (r, i) => r.evalReport(i, m)));
    for (const event of STAGE_EVENTS)
      gateway.handle(event, (s, m: Message<typeof event>) =>
        this.route(s, m.roundId, (r, i) => r.receiveStage(i, event, m)),
      );
    gateway.handle('secagg.masked-chunk', async (s, m) => {
      const r = this.roundOf(s);
      const i = r?.indexOf.get(s.siteId);
      if (r?.secure && i !== undefined) await r.secure.receiveChunk(i, m);
    });
    // A refused answer to the stage being waited for is that site's answer.
    gateway.onRefused((s, event) => this.route(s, null, (r, i) => r.refused(i, event)));
    gateway.onDisconnect((s) => this.route(s, null, (r, i) => r.disconnected(i)));
    ctx.enrollment.onRevoked((siteId) => {
      for (const r of this.active.values()) {
        const i = r.indexOf.get(siteId);
        if (i !== undefined) r.secure?.revoke(i);
      }
    });
  }

  private roundOf(s: AgentSession): ActiveRound | undefined {
    return this.active.get(s.federationId);
  }

  /** Hands a site's message to its round's secure aggregation, if the site takes part in it. */
  private route(
    s: AgentSession,
    roundId: string | null,
    f: (secure: NonNullable<ActiveRound['secure']>, index: number) => void,
  ): void {
    const r = this.roundOf(s);
    const i = r?.indexOf.get(s.siteId);
    if (!r?.secure || i === undefined || (roundId !== null && roundId !== r.roundId)) return;
    f(r.secure, i);
  }

  /** Federations with a round in progress. */
  get running(): string[] {
    return [...this.active.keys()];
  }

  /** Marks rounds that a restart left unfinished as aborted; training resumes from the last checkpoint. */
  recover(): Promise<number> {
    return this.records.recover();
  }

  /**
   * Marks the rounds in progress as aborted with a reason (a shutdown): their sites see the
   * connection close, and the next start resumes from the last stored checkpoint.
   */
  async abortActive(reason: string): Promise<void> {
    await Promise.all([...this.active.values()].map((r) => r.record.abort(reason)));
  }

  /** Runs one round of a running federation to its end (completed or failed) and returns its record. */
  runRound(federationId: string): Promise<RoundEntity> {
    if (this.active.has(federationId) || this.starting.has(federationId))
      return Promise.reject(new Error('a round of this federation is running'));
    this.starting.add(federationId);
    return runFederationRound(
      {
        ctx: this.ctx,
        gateway: this.gateway,
        store: this.store,
        models: this.models,
        records: this.records,
        strategyStates: this.strategyStates,
        opts: this.opts,
        track: (round, fedId) => {
          if (round) this.active.set(fedId, round);
          else {
            this.lastPeakUploads = this.active.get(fedId)?.secure?.peakUploads ?? this.lastPeakUploads;
            this.active.delete(fedId);
          }
        },
      },
      federationId,
    ).finally(() => this.starting.delete(federationId));
  }
}
