import { createHash } from 'node:crypto';
import {
  decodeSafetensors,
  encodeSafetensors,
  flattenCanonical,
  layoutOf,
  unflattenCanonical,
} from '@fedsynth/diffusion/weights';
import { chunkToUint32, MAX_CHUNK_BYTES, type Message, roundStartPayload } from '@fedsynth/protocol';
import {
  defaultThreshold,
  ed25519Sign,
  type RoundConfig,
  SecAggError,
  SecAggServer,
  sessionId,
} from '@fedsynth/secure-agg';
import { In, Not } from 'typeorm';
import { applyServerStep, type ServerOptimizerConfig } from '../aggregation/server-optimizer';
import type { CheckpointStore } from '../checkpoints/checkpoint-store';
import { FederationEntity, MetricEntity, RoundEntity, SiteEntity } from '../db/entities';
import type { AgentGateway, AgentSession } from '../gateway/agent-gateway';
import type { CoordinatorContext } from '../http/context';
import { DEFAULT_MAX_EVAL_COUNT, roundMetrics } from './round-metrics';
import { type RoundStage, RoundState } from './round-state';

/** Timing of the stages; masked input includes local training. */
export interface EngineOptions {
  stageTimeoutMs: number;
  trainTimeoutMs: number;
  /**
   * Masked uploads received at once. The server keeps each upload's chunks until it is complete (so
   * that a site dropping mid-upload can be taken back out exactly); a site beyond this many waits
   * for its first chunk's acknowledgement, which bounds memory to about this many model vectors.
   */
  maxConcurrentUploads?: number;
}

interface Waiting {
  pending: Set<number>;
  /** The message that answers this stage. */
  event: string;
  resolve: () => void;
}

interface ActiveRound {
  federationId: string;
  roundId: string;
  server: SecAggServer;
  config: RoundConfig;
  indexOf: Map<string, number>;
  sessions: Map<number, AgentSession>;
  waiting: Waiting | null;
  bytesIn: number;
  bytesOut: number;
  trainReports: Map<number, Message<'round.train-report'>>;
  /** Sites holding an upload slot, and sites waiting for one (FIFO). */
  uploading: Set<number>;
  uploadQueue: { index: number; grant: () => void }[];
  granted: Map<number, Promise<void>>;
  peakUploads: number;
  evalReports: Map<number, Message<'round.eval-report'>>;
  evaluating: string | null;
  /** Participants whose local training failed (train.failed), with their reason: not waited for. */
  gaveUp: Map<number, string>;
  /** Participants revoked during the round. */
  revoked: Set<number>;
  /** Participants whose whole masked vector is in the sum. */
  completedInputs: Set<number>;
}

const STAGE_EVENTS = {
  'secagg.advertise': 'advertise-keys',
  'secagg.shares': 'share-keys',
  'secagg.consistency': 'consistency-check',
  'secagg.unmask': 'unmask',
} as const;

/**
 * The latest time each stage can end (ISO), if every earlier stage ran to its deadline; a stage ends
 * earlier when every participant has answered.
 */
export function stageDeadlines(now: number, opts: EngineOptions): Record<string, string> {
  let t = now;
  const at = (ms: number) => {
    t += ms;
    return new Date(t).toISOString();
  };
  return {
    'advertise-keys': at(opts.stageTimeoutMs + opts.trainTimeoutMs / 10),
    'share-keys': at(opts.stageTimeoutMs),
    'masked-input': at(opts.trainTimeoutMs),
    'consistency-check': at(opts.stageTimeoutMs),
    unmask: at(opts.stageTimeoutMs),
  };
}

/**
 * Runs securely aggregated FedAvg rounds over the agent gateway: selects the online approved sites,
 * sends the round start, drives libs/secure-agg's server through every stage with a deadline each
 * (whoever has not answered by then is a dropout at that stage), adds masked chunks into the running
 * sum as they stream in, applies the server optimizer to the decoded mean delta, stores the new
 * checkpoint and records the round. Every stage change is persisted; `recover()` marks rounds left
 * unfinished by a restart as aborted.
 */
export class RoundEngine {
  private active: ActiveRound | null = null;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly gateway: AgentGateway,
    private readonly store: CheckpointStore,
    private readonly opts: EngineOptions,
  ) {
    gateway.handle('blob.request', (s, m) => this.serveBlob(s, m));
    gateway.handle('round.reply', (s, m) => {
      const a = this.active;
      if (!a || m.roundId !== a.roundId || m.accept) return;
      const idx = a.indexOf.get(s.siteId);
      if (idx !== undefined) this.answered(idx); // a decline: it will not advertise keys
    });
    gateway.handle('round.train-report', (s, m) => {
      const idx = this.active?.indexOf.get(s.siteId);
      if (this.active && idx !== undefined && m.roundId === this.active.roundId)
        this.active.trainReports.set(idx, m);
    });
    for (const event of Object.keys(STAGE_EVENTS) as (keyof typeof STAGE_EVENTS)[]) {
      gateway.handle(event, (s, m) => this.onStageMessage(s, event, m));
    }
    gateway.handle('secagg.masked-chunk', (s, m) => this.onMaskedChunk(s, m));
    gateway.handle('train.failed', (s, m) => {
      const a = this.active;
      const idx = a?.indexOf.get(s.siteId);
      if (!a || idx === undefined || m.roundId !== a.roundId) return;
      // The site will send no masked input: a dropout now, instead of at the stage deadline.
      a.gaveUp.set(idx, m.reason || 'local training failed');
      this.releaseUpload(idx);
      this.answered(idx);
    });
    ctx.enrollment.onRevoked((siteId) => {
      const a = this.active;
      const idx = a?.indexOf.get(siteId);
      if (!a || idx === undefined) return;
      a.revoked.add(idx);
      this.releaseUpload(idx);
      this.answered(idx);
    });
    gateway.handle('round.eval-report', (s, m) => {
      const a = this.active;
      const idx = a?.indexOf.get(s.siteId);
      if (!a || idx === undefined || m.roundId !== a.roundId || m.modelHash !== a.evaluating) return;
      a.evalReports.set(idx, m);
      this.answered(idx);
    });
    // A refused (malformed or out-of-range) answer to the stage waited for is that site's answer:
    // it will not send a better one, so the round does not wait for it until the deadline.
    gateway.onRefused((s, event) => {
      const idx = this.active?.indexOf.get(s.siteId);
      if (idx !== undefined && this.active?.waiting?.event === event) this.answered(idx);
    });
    gateway.onDisconnect((s) => {
      const idx = this.active?.indexOf.get(s.siteId);
      if (idx !== undefined) {
        this.releaseUpload(idx);
        this.answered(idx);
      }
    });
  }

  /** Marks rounds that a restart left unfinished as aborted; training resumes from the last checkpoint. */
  async recover(): Promise<number> {
    const repo = this.ctx.db.dataSource.getRepository(RoundEntity);
    const open = await repo.findBy({ stage: Not(In(['completed', 'failed', 'aborted'])) });
    for (const r of open) {
      await repo.update(
        { id: r.id },
        {
          stage: 'aborted',
          error: `the coordinator restarted while the round was in ${r.stage}`,
          finishedAt: new Date(),
        },
      );
    }
    return open.length;
  }

  /** Most masked uploads received at once in the last round (the benchmark reports it). */
  lastPeakUploads = 0;

  /** The record of the round in progress, if any (for shutdown). */
  private activeRowId: string | null = null;

  /**
   * Marks the round in progress as aborted with a reason (a shutdown): its sites see the connection
   * close, and the next start resumes from the last stored checkpoint.
   */
  async abortActive(reason: string): Promise<void> {
    if (!this.activeRowId) return;
    await this.ctx.db.dataSource
      .getRepository(RoundEntity)
      .update({ id: this.activeRowId }, { stage: 'aborted', error: reason, finishedAt: new Date() });
    this.activeRowId = null;
  }

  private answered(index: number): void {
    const w = this.active?.waiting;
    if (!w) return;
    w.pending.delete(index);
    if (w.pending.size === 0) w.resolve();
  }

  private collect(participants: Iterable<number>, timeoutMs: number, event: string): Promise<void> {
    return new Promise((resolve) => {
      const a = this.active!;
      // Sites that gave up or were revoked are not waited for.
      const pending = new Set([...participants].filter((i) => !a.gaveUp.has(i) && !a.revoked.has(i)));
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        a.waiting = null;
        resolve();
      }
      a.waiting = { pending, event, resolve: done };
      if (pending.size === 0) done();
    });
  }

  private refuseFromRound(s: AgentSession, err: unknown, index: number): void {
    s.socket.emit('protocol.error', {
      code: err instanceof SecAggError ? err.code : 'INVALID_MESSAGE',
      message: (err as Error).message,
    });
    this.answered(index);
  }

  private onStageMessage(s: AgentSession, event: keyof typeof STAGE_EVENTS, msg: unknown): void {
    const a = this.active;
    const idx = a?.indexOf.get(s.siteId);
    if (!a || idx === undefined || a.gaveUp.has(idx) || a.revoked.has(idx)) return;
    const m = msg as { sender: number };
    try {
      if (m.sender !== idx)
        throw new SecAggError(
          'UNKNOWN_PARTICIPANT' as never,
          `this connection is participant ${idx}, not ${m.sender}`,
        );
      if (event === 'secagg.advertise') a.server.receiveAdvertise(msg as never);
      else if (event === 'secagg.shares') a.server.receiveShares(msg as never);
      else if (event === 'secagg.consistency') a.server.receiveConsistency(msg as never);
      else a.server.receiveUnmask(msg as never);
      this.answered(idx);
    } catch (err) {
      this.refuseFromRound(s, err, idx);
    }
  }

  /** Resolves once site `index` holds an upload slot (at once when one is free or it holds one). */
  private uploadSlot(a: ActiveRound, index: number): Promise<void> {
    const pending = a.granted.get(index);
    if (pending) return pending;
    const limit = this.opts.maxConcurrentUploads ?? 8;
    const p =
      a.uploading.size < limit
        ? Promise.resolve()
        : new Promise<void>((grant) => a.uploadQueue.push({ index, grant }));
    if (a.uploading.size < limit) {
      a.uploading.add(index);
      a.peakUploads = Math.max(a.peakUploads, a.uploading.size);
    }
    a.granted.set(index, p);
    return p;
  }

  /** Frees a site's upload slot (complete, refused or gone) and grants it to the next in line. */
  private releaseUpload(index: number): void {
    const a = this.active;
    if (!a) return;
    a.granted.delete(index);
    const queued = a.uploadQueue.findIndex((q) => q.index === index);
    if (queued >= 0) a.uploadQueue.splice(queued, 1)[0].grant();
    if (!a.uploading.delete(index)) return;
    const next = a.uploadQueue.shift();
    if (next) {
      a.uploading.add(next.index);
      a.peakUploads = Math.max(a.peakUploads, a.uploading.size);
      next.grant();
    }
  }

  private async onMaskedChunk(s: AgentSession, m: Message<'secagg.masked-chunk'>): Promise<void> {
    const a = this.active;
    const idx = a?.indexOf.get(s.siteId);
    if (!a || idx === undefined || a.gaveUp.has(idx) || a.revoked.has(idx)) return;
    await this.uploadSlot(a, idx);
    if (this.active !== a || !s.socket.connected) return this.releaseUpload(idx);
    try {
      if (m.transferId !== `${a.roundId}/${idx}`)
        throw new Error(`masked chunk of transfer ${m.transferId}; expected ${a.roundId}/${idx}`);
      const expected = (a.config.vectorLength + 1) * 4;
      if (m.total !== expected)
        throw new Error(`masked vector of ${m.total} bytes; the round expects ${expected}`);
      if (m.offset % 4 !== 0) throw new Error(`masked chunk offset ${m.offset} is not a multiple of 4`);
      a.server.receiveMaskedChunk(idx, m.offset / 4, chunkToUint32(m.data));
      a.bytesIn += m.data.length;
      if (m.offset + m.data.length === m.total) {
        a.server.completeMaskedInput(idx);
        a.completedInputs.add(idx);
        this.releaseUpload(idx);
        this.answered(idx);
      }
    } catch (err) {
      this.releaseUpload(idx);
      this.refuseFromRound(s, err, idx);
    }
  }

  /**
   * The models of the current rounds (the input being trained and the output being evaluated),
   * read and verified once instead of once per site that asks.
   */
  private readonly hotModels = new Map<string, Uint8Array>();

  private async modelBytes(sha: string): Promise<Uint8Array> {
    let bytes = this.hotModels.get(sha);
    if (!bytes) {
      bytes = await this.store.get(sha);
      this.keepHot(sha, bytes);
    }
    return bytes;
  }

  private keepHot(sha: string, bytes: Uint8Array): void {
    this.hotModels.delete(sha);
    this.hotModels.set(sha, bytes);
    while (this.hotModels.size > 2) this.hotModels.delete(this.hotModels.keys().next().value as string);
  }

  /**
   * Whether a site may fetch a model: the input or the output of the round it takes part in now,
   * or its own federation's current model or a model its completed rounds took in or produced.
   * Never another federation's model, whatever its hash.
   */
  private async mayFetch(s: AgentSession, sha: string): Promise<boolean> {
    const a = this.active;
    if (a && a.federationId === s.federationId && a.indexOf.has(s.siteId))
      if (sha === a.config.modelHash || sha === a.evaluating) return true;
    const rows: unknown[] = await this.ctx.db.dataSource.query(
      `SELECT 1 FROM federations WHERE id = $1 AND current_checkpoint = $2
       UNION ALL
       SELECT 1 FROM rounds WHERE federation_id = $1 AND stage = 'completed'
         AND (checkpoint_in = $2 OR checkpoint_out = $2)
       LIMIT 1`,
      [s.federationId, sha],
    );
    return rows.length > 0;
  }

  private async serveBlob(s: AgentSession, m: Message<'blob.request'>): Promise<void> {
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
      bytes = await this.modelBytes(m.sha256);
    } catch (err) {
      console.error(`serving model ${m.sha256}: ${(err as Error).message}`);
      return notFound();
    }
    for (let o = m.offset; o < bytes.length; o += MAX_CHUNK_BYTES) {
      const data = bytes.subarray(o, Math.min(bytes.length, o + MAX_CHUNK_BYTES));
      s.socket.emit('blob.chunk', { transferId: m.sha256, offset: o, total: bytes.length, data });
      if (this.active) this.active.bytesOut += data.length;
    }
  }

  /**
   * A site revoked after its masked update went into the sum cannot be taken back out (the others
   * have agreed on the survivor list), so the round fails rather than aggregate it. A revoked site
   * whose update is not complete is simply a dropout. Read from the database, so a revocation made
   * through any replica counts.
   */
  private async refuseRevokedInputs(a: ActiveRound): Promise<void> {
    const revoked = await this.ctx.db.dataSource.getRepository(SiteEntity).findBy({
      id: In(a.config.participants.map((p) => p.siteId)),
      status: 'revoked',
    });
    for (const site of revoked) a.revoked.add(a.indexOf.get(site.id)!);
    const bad = revoked.filter((site) => a.completedInputs.has(a.indexOf.get(site.id)!));
    if (bad.length)
      throw new Error(
        `site${bad.length > 1 ? 's' : ''} ${bad.map((b) => `"${b.name}"`).join(', ')} ${bad.length > 1 ? 'were' : 'was'} revoked after ${bad.length > 1 ? 'their' : 'its'} masked update went into the sum; the round is discarded`,
      );
  }

  private emitAll<T>(a: ActiveRound, event: string, messages: Map<number, T>): void {
    for (const [idx, msg] of messages) a.sessions.get(idx)?.socket.emit(event, msg);
  }

  /** Runs one round of a running federation to its end (completed or failed) and returns its record. */
  async runRound(federationId: string): Promise<RoundEntity> {
    if (this.active) throw new Error('a round is already running');
    const fed: FederationEntity = await this.ctx.federations.get(federationId);
    if (fed.status !== 'running') throw new Error(`federation "${fed.name}" is ${fed.status}, not running`);
    if (!fed.currentCheckpoint) throw new Error(`federation "${fed.name}" has no initial checkpoint`);
    const rounds = this.ctx.db.dataSource.getRepository(RoundEntity);
    const last = await rounds.findOne({ where: { federationId: fed.id }, order: { number: 'DESC' } });
    const number = last ? last.number + 1 : 0;
    const state = new RoundState('selecting');
    const row: RoundEntity = await rounds.save({
      federationId: fed.id,
      number,
      stage: state.stage,
      stageTimes: state.stageTimes(),
      checkpointIn: fed.currentCheckpoint,
      startedAt: new Date(),
    });
    this.activeRowId = row.id;
    // Once a shutdown has recorded this round as aborted, nothing overwrites that record.
    const persist = async (extra: Partial<RoundEntity> = {}) => {
      if (this.activeRowId === row.id)
        await rounds.update({ id: row.id }, { stage: state.stage, stageTimes: state.stageTimes(), ...extra });
    };
    const advance = async (to: RoundStage) => {
      state.advance(to);
      await persist();
    };
    const plan = fed.plan as Record<string, number | string>;
    const secagg = fed.secagg as Record<string, number | string>;
    const roundId = `${fed.id}:${number}`;
    try {
      // Selection: wait up to plan.waitSeconds for minSites approved sites to be online, then take
      // ceil(fraction x online) of them (at least minSites, at most maxSites), chosen by a hash of
      // the round id so that every round draws afresh and the draw can be reproduced.
      const needed = Math.max(3, Number(plan.minSites ?? 3));
      const siteRepo = this.ctx.db.dataSource.getRepository(SiteEntity);
      // Online sites of this federation that are approved now (a revoked site is never selected,
      // even if a connection of it were still open somewhere).
      const onlineNow = async () => {
        const sessions = (await this.gateway.allSessions()).filter((s) => s.federationId === fed.id);
        if (sessions.length === 0) return sessions;
        const approved = await siteRepo.findBy({ id: In(sessions.map((s) => s.siteId)), status: 'approved' });
        const ok = new Set(approved.map((x) => x.id));
        return sessions.filter((s) => ok.has(s.siteId));
      };
      const waitUntil = Date.now() + Number(plan.waitSeconds ?? 300) * 1000;
      let online = await onlineNow();
      let polls = 0;
      while (online.length < needed && Date.now() < waitUntil) {
        await new Promise((r) => setTimeout(r, 200));
        online = await onlineNow();
        // An admin may pause or stop the federation while it waits for sites.
        if (++polls % 5 === 0) {
          const now = await this.ctx.federations.get(fed.id);
          if (now.status !== 'running')
            throw new Error(`the federation was ${now.status} while the round waited for sites`);
        }
      }
      if (online.length < needed)
        throw new Error(
          `too few sites online: ${online.length} of the ${needed} needed after waiting ${plan.waitSeconds ?? 300} s`,
        );
      const count = Math.min(
        Number(plan.maxSites ?? 100),
        Math.max(needed, Math.ceil(Number(plan.fraction ?? 1) * online.length)),
      );
      const draw = (siteId: string) => createHash('sha256').update(`${roundId}/${siteId}`).digest('hex');
      const chosen = online
        .sort((x, y) => (draw(x.siteId) < draw(y.siteId) ? -1 : 1))
        .slice(0, count)
        .sort((x, y) => (x.siteId < y.siteId ? -1 : 1));
      const sites = await siteRepo.findBy({ id: In(chosen.map((c) => c.siteId)) });
      const keyOf = new Map(sites.map((s) => [s.id, new Uint8Array(s.publicKey)]));
      const modelIn = await this.modelBytes(fed.currentCheckpoint);
      const model = decodeSafetensors(modelIn, fed.currentCheckpoint);
      const vectorLength = model.arrays.reduce((n, t) => n + t.data.length, 0);
      const config: RoundConfig = {
        roundId,
        modelHash: fed.currentCheckpoint,
        participants: chosen.map((s, i) => ({
          index: i + 1,
          siteId: s.siteId,
          identityKey: keyOf.get(s.siteId)!,
        })),
        threshold: defaultThreshold(
          chosen.length,
          secagg.threatModel === 'honest-but-curious' ? 'honest-but-curious' : 'active',
        ),
        graph: { kind: 'complete' },
        vectorLength,
        quantization: {
          clip: Number(secagg.clip ?? 0.05),
          levels: Number(secagg.levels ?? 65536),
          maxWeight: Number(secagg.maxWeight ?? 100_000),
        },
      };
      const a: ActiveRound = {
        federationId: fed.id,
        roundId,
        server: new SecAggServer(config),
        config,
        indexOf: new Map(config.participants.map((p) => [p.siteId, p.index])),
        sessions: new Map(config.participants.map((p, i) => [p.index, chosen[i]])),
        waiting: null,
        bytesIn: 0,
        bytesOut: 0,
        trainReports: new Map(),
        uploading: new Set(),
        uploadQueue: [],
        granted: new Map(),
        peakUploads: 0,
        evalReports: new Map(),
        evaluating: null,
        gaveUp: new Map(),
        revoked: new Set(),
        completedInputs: new Set(),
      };
      this.active = a;
      await persist({ participants: config.participants.map((p) => ({ index: p.index, siteId: p.siteId })) });
      const dp = fed.dp as Record<string, number>;
      const start = {
        federationId: fed.id,
        roundNumber: number,
        task: { source: fed.task.source, target: fed.task.target },
        secAgg: config,
        modelBytes: modelIn.length,
        plan: {
          localSteps: Number(plan.localSteps ?? 50),
          batchSize: Number(plan.batchSize ?? 8),
          lr: Number(plan.lr ?? 2e-4),
          size: Number((fed.modelConfig as Record<string, number>).size ?? 64),
          prediction: String(plan.prediction ?? 'sample'),
          schedule: String(plan.schedule ?? 'cosine'),
          fedProxMu: Number(plan.fedProxMu ?? 0),
          dp: {
            clip: Number(dp.clip ?? 10),
            noiseMultiplier: Number(dp.noiseMultiplier ?? 0),
            delta: Number(dp.delta ?? 1e-5),
          },
        },
        deadlines: stageDeadlines(Date.now(), this.opts),
      };
      const signed = {
        ...start,
        signature: ed25519Sign(this.ctx.identity.secretKey, roundStartPayload(sessionId(config), start)),
      };
      const all = config.participants.map((p) => p.index);
      await advance('advertise-keys');
      for (const s of chosen) s.socket.emit('round.start', signed);
      await this.collect(all, this.opts.stageTimeoutMs + this.opts.trainTimeoutMs / 10, 'secagg.advertise');
      const rosters = a.server.closeAdvertise();
      await advance('share-keys');
      this.emitAll(a, 'secagg.roster', rosters);
      await this.collect(rosters.keys(), this.opts.stageTimeoutMs, 'secagg.shares');
      const inboxes = a.server.closeShareKeys();
      await advance('masked-input');
      this.emitAll(a, 'secagg.inbox', inboxes);
      await this.collect(inboxes.keys(), this.opts.trainTimeoutMs, 'secagg.masked-chunk');
      // Sites still waiting for an upload slot at the deadline are dropouts; let their handlers end.
      for (const q of a.uploadQueue.splice(0)) q.grant();
      this.lastPeakUploads = a.peakUploads;
      await this.refuseRevokedInputs(a);
      const lists = a.server.closeMaskedInput();
      await advance('consistency-check');
      this.emitAll(a, 'secagg.survivors', lists);
      await this.collect(lists.keys(), this.opts.stageTimeoutMs, 'secagg.consistency');
      const checks = a.server.closeConsistency();
      await advance('unmask');
      this.emitAll(a, 'secagg.consistency-result', checks);
      await this.collect(checks.keys(), this.opts.stageTimeoutMs, 'secagg.unmask');
      await this.refuseRevokedInputs(a);
      const result = a.server.finalize();
      await advance('applying');
      const opt = { kind: 'fedavg', lr: 1, ...(fed.serverOptimizer as object) } as ServerOptimizerConfig;
      const { weights } = applyServerStep(flattenCanonical(model.arrays), result.mean, opt);
      const next = encodeSafetensors(unflattenCanonical(weights, layoutOf(model.arrays)), model.metadata);
      // Stored, but no record names it until the round completes: an aborted or failed round's
      // output never becomes anybody's input.
      const sha = await this.store.put(next, { federationId: fed.id, roundNumber: number });
      this.keepHot(sha, next);
      await advance('evaluating');
      // Sites score the new model on their validation splits; the global figure is weighted by counts.
      a.evaluating = sha;
      const evaluators = result.survivors.filter((i) => a.sessions.get(i)?.socket.connected);
      for (const i of evaluators)
        a.sessions
          .get(i)!
          .socket.emit('round.evaluate', { roundId, modelHash: sha, modelBytes: next.length });
      await this.collect(evaluators, this.opts.trainTimeoutMs, 'round.eval-report');
      const metrics = roundMetrics({
        federationId: fed.id,
        roundNumber: number,
        siteIdOf: (i) => config.participants[i - 1].siteId,
        survivors: result.survivors,
        trainReports: a.trainReports,
        evalReports: a.evalReports,
        maxEvalCount: Number(plan.maxEvalCount ?? DEFAULT_MAX_EVAL_COUNT),
      });
      const dropouts = result.dropouts.map((d) => {
        const reason = a.revoked.has(d.index) ? 'revoked during the round' : a.gaveUp.get(d.index);
        return {
          siteId: config.participants[d.index - 1].siteId,
          stage: d.stage,
          ...(reason ? { reason } : {}),
        };
      });
      // One transaction: the round becomes completed with its model, dropouts, bytes and metrics,
      // and the federation's current model moves to its output, or none of it happens.
      const finishedAt = new Date();
      await this.ctx.db.dataSource.transaction(async (m) => {
        if (metrics.length) await m.getRepository(MetricEntity).insert(metrics);
        const done = await m.getRepository(RoundEntity).update(
          { id: row.id, stage: 'evaluating' },
          {
            stage: 'completed',
            stageTimes: { ...state.stageTimes(), completed: finishedAt.toISOString() },
            checkpointOut: sha,
            dropouts,
            bytesIn: String(a.bytesIn),
            bytesOut: String(a.bytesOut),
            finishedAt,
          },
        );
        if (!done.affected) throw new Error('the round was ended meanwhile (the coordinator is stopping)');
        const moved = await m
          .getRepository(FederationEntity)
          .update({ id: fed.id, currentCheckpoint: fed.currentCheckpoint! }, { currentCheckpoint: sha });
        if (!moved.affected)
          throw new Error(
            "the federation's model was replaced during the round; this round's output is discarded",
          );
      });
      state.advance('completed', finishedAt);
    } catch (err) {
      state.end('failed', (err as Error).message);
      await persist({
        error: state.reason,
        finishedAt: new Date(),
        bytesIn: String(this.active?.bytesIn ?? 0),
        bytesOut: String(this.active?.bytesOut ?? 0),
      });
    } finally {
      this.active = null;
      this.activeRowId = null;
    }
    return rounds.findOneByOrFail({ id: row.id });
  }
}
