import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createProgress } from '@fedsynth/imaging';
import {
  ChunkReceiver,
  type Message,
  type MessageName,
  parseMessage,
  roundStartPayload,
  sha256Hex,
  signedAuthResponse,
  socketParser,
} from '@fedsynth/protocol';
import { ed25519Verify, type RoundConfig, SecAggClient, sessionId } from '@fedsynth/secure-agg';
import { io, type Socket } from 'socket.io-client';
import { AuditLog } from '../audit/audit-log';
import { type AgentConfig, loadAgentConfig } from '../config/agent-config';
import { isWithinWindow, parseTrainingWindow } from '../controls/training-window';
import type { IdentityKey } from '../identity/identity-key';
import { privatizeUpdate } from '../privacy/dp';
import { RdpAccountant } from '../privacy/rdp-accountant';
import { AuditedSocket } from './audited-socket';
import type { Enrollment } from './enrollment';
import {
  DataCache,
  effectivePlan,
  evaluateLocally,
  type LocalUpdate,
  type SiteLimits,
  trainLocally,
} from './local-training';
import type { Logger } from './logger';
import { type AgentStatus, writeStatus } from './status';

const VERSION = '0.1.0';

/** Refusals after which reconnecting cannot help: the agent stops and says what to do. */
const FATAL = new Set(['UNKNOWN_KEY', 'REVOKED', 'WRONG_VERSION', 'BAD_SIGNATURE']);

interface SiteRound {
  roundId: string;
  client: SecAggClient;
  start: Message<'round.start'>;
  update: Promise<LocalUpdate & { epsilon: number | null }>;
  stage: string;
  done: boolean;
  cancelled: boolean;
}

interface Transfer {
  receiver: ChunkReceiver;
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

export interface SiteAgentOptions {
  config: AgentConfig;
  identity: IdentityKey;
  enrollment: Enrollment;
  log: Logger;
  /** The backend to train on, chosen by the caller (see libs/diffusion selectBackend). */
  backend: { backend: string; device: string };
  /** Show a progress bar for local training (a terminal); otherwise structured progress lines. */
  progress?: boolean;
}

/**
 * The site agent daemon: keeps one authenticated connection to the coordinator (reconnecting with
 * backoff, across coordinator restarts), takes part in one round at a time when the site's controls
 * allow it, trains on local data, sends only its securely masked update and aggregate figures, and
 * scores each new global model on its validation split. Every outbound message is in the audit log.
 */
export class SiteAgent {
  readonly audit: AuditLog;
  private socket!: Socket;
  private channel!: AuditedSocket;
  private round: SiteRound | null = null;
  private readonly transfers = new Map<string, Transfer>();
  private readonly data: DataCache | null;
  private readonly accountant: RdpAccountant;
  private readonly modelsDir: string;
  private readonly status: AgentStatus;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private refusedDelayMs = 2000;
  private stopped = false;
  private onFatal: ((err: Error) => void) | null = null;
  private evaluating: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SiteAgentOptions) {
    const { config } = opts;
    this.audit = new AuditLog(join(config.stateDir, 'audit.jsonl'));
    this.data = config.dataDir ? new DataCache(config.dataDir, config.modalities) : null;
    this.modelsDir = join(config.stateDir, 'models');
    const privacyFile = join(config.stateDir, 'privacy.json');
    this.accountant = existsSync(privacyFile)
      ? new RdpAccountant(JSON.parse(readFileSync(privacyFile, 'utf8')))
      : new RdpAccountant();
    this.status = {
      pid: process.pid,
      updatedAt: new Date().toISOString(),
      connection: 'connecting',
      coordinatorUrl: opts.enrollment.coordinatorUrl,
      lastError: null,
      backend: opts.backend.backend,
      device: opts.backend.device,
      currentRound: null,
      lastRound: null,
      lastEval: null,
      latestModel: null,
      roundsTaken: 0,
    };
  }

  private setStatus(patch: Partial<AgentStatus>): void {
    Object.assign(this.status, patch, { updatedAt: new Date().toISOString() });
    try {
      writeStatus(this.opts.config.stateDir, this.status);
    } catch (err) {
      this.opts.log.warn('cannot write status file', { error: (err as Error).message });
    }
  }

  /** Connects and runs until stop(); rejects when the coordinator refuses this site for good. */
  run(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onFatal = (err) => {
        void this.stop().then(() => reject(err));
      };
      this.stopResolve = resolve;
      this.connect();
    });
  }

  private stopResolve: (() => void) | null = null;

  private connect(): void {
    const { enrollment, config, log } = this.opts;
    const url = `${enrollment.coordinatorUrl.replace(/^ws/, 'http')}/agents`;
    this.socket = io(url, {
      transports: ['websocket'],
      parser: socketParser,
      autoConnect: false,
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 30_000,
      randomizationFactor: 0.5,
      ...(config.caCert ? { ca: readFileSync(config.caCert, 'utf8') } : {}),
    });
    this.channel = new AuditedSocket(this.socket, this.audit);
    const s = this.socket;
    s.on('connect_error', (err) => {
      this.setStatus({ connection: 'disconnected', lastError: err.message });
      log.warn('cannot reach the coordinator; retrying', { url, error: err.message });
    });
    s.on('disconnect', (reason) => {
      this.setStatus({ connection: 'disconnected' });
      if (this.stopped) return;
      log.warn('disconnected from the coordinator', { reason });
      if (reason === 'io server disconnect') this.scheduleReconnect();
    });
    this.on('auth.challenge', (c) => this.login(c));
    this.on('auth.ok', (m) => {
      this.refusedDelayMs = 2000;
      this.setStatus({ connection: 'connected', lastError: null });
      log.info('connected', { site: m.siteName, coordinator: enrollment.coordinatorUrl });
      this.abandonRound('the connection was lost during the round');
      void this.hello();
      // Transfers cut by the disconnect continue from where they stopped.
      for (const [sha, t] of this.transfers)
        this.channel.emit('blob.request', { sha256: sha, offset: t.receiver.offset });
    });
    this.on('protocol.error', (e) => this.onProtocolError(e));
    this.on('round.start', (m) => this.onRoundStart(m));
    this.on('blob.chunk', (c) => this.onBlobChunk(c));
    this.on('secagg.roster', (r) =>
      this.stage('share-keys', r.roundId, (x) => x.client.shareKeys(r), 'secagg.shares'),
    );
    this.on('secagg.inbox', (inbox) => void this.onInbox(inbox));
    this.on('secagg.survivors', (l) =>
      this.stage('consistency-check', l.roundId, (x) => x.client.consistencyCheck(l), 'secagg.consistency'),
    );
    this.on('secagg.consistency-result', (r) => {
      this.stage('unmask', r.roundId, (x) => x.client.unmask(r), 'secagg.unmask');
      this.finishRound('uploaded');
    });
    this.on('round.evaluate', (m) => {
      this.evaluating = this.evaluating.then(() => this.onEvaluate(m));
    });
    s.connect();
  }

  /** Subscribes to a coordinator message, validating it against the protocol first. */
  private on<N extends MessageName>(event: N, handler: (m: Message<N>) => void): void {
    this.socket.on(event as string, (raw: unknown) => {
      let m: Message<N>;
      try {
        m = parseMessage(event, raw);
      } catch (err) {
        this.opts.log.error('ignored a malformed message from the coordinator', {
          event,
          error: (err as Error).message,
        });
        return;
      }
      try {
        handler(m);
      } catch (err) {
        this.opts.log.error(`handling ${event} failed`, { error: (err as Error).message });
      }
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.refusedDelayMs;
    this.refusedDelayMs = Math.min(60_000, this.refusedDelayMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.socket.connect();
    }, delay);
  }

  private login(c: Message<'auth.challenge'>): void {
    const { identity } = this.opts;
    const nonce = new Uint8Array(c.nonce);
    const skewMs = Date.now() - Date.parse(c.serverTime);
    if (Math.abs(skewMs) > 60_000)
      this.opts.log.warn('clock differs from the coordinator by more than a minute', { skewMs });
    this.channel.emit('auth.response', signedAuthResponse(nonce, identity, VERSION));
  }

  private onProtocolError(e: Message<'protocol.error'>): void {
    const { log } = this.opts;
    if (e.code === 'NOT_APPROVED') {
      this.setStatus({ connection: 'refused', lastError: e.message });
      log.info('waiting for an admin to approve this site', { retryInSeconds: this.refusedDelayMs / 1000 });
      return;
    }
    this.setStatus({ lastError: `${e.code}: ${e.message}` });
    if (FATAL.has(e.code)) {
      this.setStatus({ connection: 'refused' });
      log.error('the coordinator refused this site', { code: e.code, message: e.message });
      this.onFatal?.(new Error(`${e.code}: ${e.message}`));
      return;
    }
    log.warn('the coordinator reported a problem', { code: e.code, message: e.message, ref: e.ref });
    // A refused model download ends that transfer (and the training waiting for it).
    const t = e.ref ? this.transfers.get(e.ref) : undefined;
    if (t && e.ref) {
      this.transfers.delete(e.ref);
      t.reject(new Error(`the coordinator refused model ${e.ref}: ${e.code}: ${e.message}`));
    }
  }

  /** Re-reads the controls from the config file, so pausing takes effect without a restart. */
  private controls(): AgentConfig {
    try {
      return loadAgentConfig({ stateDir: this.opts.config.stateDir, env: {}, flags: {} });
    } catch {
      return this.opts.config;
    }
  }

  /** Why this site would decline a round now, or null when it takes part. */
  private declineReason(c: AgentConfig = this.controls()): string | null {
    if (c.optOut) return 'the site has opted out of training';
    if (c.paused) return 'the site has paused training';
    if (!isWithinWindow(parseTrainingWindow(c.trainingWindow)))
      return `outside the site's training window (${c.trainingWindow})`;
    if (!this.data) return 'no data directory is configured';
    return null;
  }

  private async hello(): Promise<void> {
    let sampleCount = 0;
    if (this.data) {
      try {
        sampleCount = await this.data.subjectCount();
      } catch (err) {
        this.opts.log.error('cannot read the local data', { error: (err as Error).message });
      }
    }
    const reason = this.declineReason();
    this.channel.emit('agent.hello', {
      backend: this.opts.backend.backend,
      device: this.opts.backend.device.slice(0, 200),
      sampleCount,
      accepting: reason === null,
      ...(reason ? { reason } : {}),
    });
  }

  private onRoundStart(m: Message<'round.start'>): void {
    const { log, identity, enrollment } = this.opts;
    const config: RoundConfig = {
      ...m.secAgg,
      participants: m.secAgg.participants.map((p) => ({ ...p, identityKey: new Uint8Array(p.identityKey) })),
      graph:
        m.secAgg.graph.kind === 'harary'
          ? { ...m.secAgg.graph, seed: new Uint8Array(m.secAgg.graph.seed) }
          : m.secAgg.graph,
    } as RoundConfig;
    const roundId = config.roundId;
    const decline = (reason: string) => {
      log.info('declined a round', { round: roundId, reason });
      this.channel.emit('round.reply', { roundId, accept: false, reason });
      this.setStatus({
        lastRound: { roundId, outcome: 'declined', reason, finishedAt: new Date().toISOString() },
      });
    };
    const coordinatorKey = new Uint8Array(Buffer.from(enrollment.coordinatorKey, 'base64'));
    const { signature, ...unsigned } = m;
    if (
      !ed25519Verify(
        coordinatorKey,
        roundStartPayload(sessionId(config), unsigned),
        new Uint8Array(signature),
      )
    ) {
      decline('round start not signed by the coordinator key pinned at enrollment');
      return;
    }
    // The site's controls, read once for this round (agent.json may have changed since the last).
    const controls = this.controls();
    const reason = this.declineReason(controls);
    if (reason) {
      decline(reason);
      return;
    }
    // The coordinator runs one round at a time: a new start means the previous round ended there.
    this.abandonRound('the coordinator started another round');
    const me = config.participants.find((p) =>
      Buffer.from(p.identityKey).equals(Buffer.from(identity.publicKey)),
    );
    if (!me) {
      decline('this site is not among the round participants');
      return;
    }
    let client: SecAggClient;
    try {
      client = new SecAggClient({ config, selfIndex: me.index, identitySecretKey: identity.secretKey });
    } catch (err) {
      decline(`invalid secure-aggregation parameters: ${(err as Error).message}`);
      return;
    }
    const { steps, batch } = effectivePlan(m.plan, controls);
    log.info('joining round', {
      round: roundId,
      number: m.roundNumber,
      task: `${m.task.source} -> ${m.task.target}`,
      participants: config.participants.length,
      steps,
      batch,
    });
    const cancelled = () => this.round?.roundId !== roundId || this.round.cancelled;
    const update = this.prepareUpdate(m, config, controls, cancelled);
    // A failed training (data gone, out of memory, a bad model) is reported at once, so the round
    // goes on without this site instead of waiting for it until the stage deadline.
    update.catch((err: Error) => this.trainingFailed(roundId, err));
    this.round = {
      roundId,
      client,
      start: m,
      update,
      stage: 'advertise-keys',
      done: false,
      cancelled: false,
    };
    this.setStatus({
      currentRound: { roundId, stage: 'advertise-keys', startedAt: new Date().toISOString() },
    });
    this.channel.emit('round.reply', { roundId, accept: true });
    this.channel.emit('secagg.advertise', client.advertiseKeys());
  }

  /** Fetches the global model, trains on local data, clips and (optionally) noises the update. */
  private async prepareUpdate(
    m: Message<'round.start'>,
    config: RoundConfig,
    limits: SiteLimits,
    cancelled: () => boolean,
  ): Promise<LocalUpdate & { epsilon: number | null }> {
    const { log } = this.opts;
    const checkpoint = await this.fetchModel(config.modelHash, m.modelBytes);
    const data = await this.data!.get(m.plan.size);
    const bar = this.progressBar(
      `round ${m.roundNumber}: local training`,
      effectivePlan(m.plan, limits).steps,
    );
    const u = await trainLocally({
      checkpoint,
      plan: m.plan,
      limits,
      data,
      seed: (m.roundNumber * 7919 + (Date.now() % 7919)) >>> 0,
      onStep: (s, _t, loss) => {
        if (cancelled()) throw new Error('the round ended before local training finished');
        bar.tick(s, { loss });
      },
    });
    bar.done({ loss: u.loss });
    if (u.delta.length !== config.vectorLength)
      throw new Error(`the update has ${u.delta.length} values; the round expects ${config.vectorLength}`);
    // Differential privacy: bound each site's influence, then add this site's share of the noise.
    const { norm, factor, epsilon } = privatizeUpdate(
      u.delta,
      m.plan.dp,
      config.participants.length,
      this.accountant,
    );
    if (epsilon !== null)
      await writeFile(
        join(this.opts.config.stateDir, 'privacy.json'),
        JSON.stringify(this.accountant.toJSON()),
        { mode: 0o600 },
      );
    let clipped = 0;
    const c = config.quantization.clip;
    for (let i = 0; i < u.delta.length; i++) if (Math.abs(u.delta[i]) > c) clipped++;
    log.info('local training done', {
      round: config.roundId,
      steps: u.steps,
      loss: u.loss,
      seconds: u.ms / 1000,
      updateNorm: norm,
      dpClipFactor: factor,
      valuesBeyondQuantizationClip: clipped,
      ...(epsilon !== null ? { epsilon } : {}),
    });
    return { ...u, epsilon };
  }

  private progressBar(label: string, total: number) {
    return createProgress(label, total, { json: !this.opts.progress });
  }

  /** Runs a secure-aggregation step of the current round and sends its answer. */
  private stage(stage: string, roundId: string, f: (r: SiteRound) => unknown, event: string): void {
    const r = this.round;
    if (!r || r.roundId !== roundId || r.done) return;
    r.stage = stage;
    this.setStatus({ currentRound: { ...this.status.currentRound!, stage } });
    try {
      this.channel.emit(event, f(r));
    } catch (err) {
      this.opts.log.error(`secure aggregation failed at ${stage}`, {
        round: roundId,
        error: (err as Error).message,
      });
      this.finishRound('failed', (err as Error).message);
    }
  }

  private trainingFailed(roundId: string, err: Error): void {
    const r = this.round;
    if (!r || r.roundId !== roundId || r.done || r.cancelled) return;
    const reason = err.message.slice(0, 300);
    this.opts.log.error('local training failed; this site drops out of the round', {
      round: roundId,
      error: err.message,
    });
    this.channel.emit('train.failed', { roundId, reason });
    this.finishRound('failed', reason);
  }

  private async onInbox(inbox: Message<'secagg.inbox'>): Promise<void> {
    const r = this.round;
    if (!r || r.roundId !== inbox.roundId || r.done) return;
    r.stage = 'masked-input';
    this.setStatus({ currentRound: { ...this.status.currentRound!, stage: 'masked-input' } });
    let u: LocalUpdate & { epsilon: number | null };
    try {
      u = await r.update;
    } catch {
      return; // reported by trainingFailed
    }
    if (r.done) return;
    const data = await this.data!.get(r.start.plan.size);
    this.channel.emit('round.train-report', {
      roundId: r.roundId,
      loss: u.loss,
      steps: u.steps,
      epsilon: u.epsilon,
    });
    const weight = Math.min(data.train.length, r.client.config.quantization.maxWeight);
    // The coordinator acknowledges a first chunk only when an upload slot frees up: wait for it up
    // to the stage deadline rather than a fixed time.
    const deadline = Date.parse(r.start.deadlines['masked-input'] ?? '');
    const ackTimeoutMs = Number.isFinite(deadline) ? Math.max(60_000, deadline - Date.now()) : 30 * 60_000;
    try {
      const stream = r.client.maskedInput(inbox as never, { values: u.delta, weight });
      const total = stream.length * 4;
      for (const ch of stream) {
        const bytes = new Uint8Array(ch.data.buffer, ch.data.byteOffset, ch.data.byteLength);
        await this.channel.emitWithAck(
          'secagg.masked-chunk',
          {
            transferId: `${r.roundId}/${r.client.selfIndex}`,
            offset: ch.offset * 4,
            total,
            data: bytes,
          },
          ackTimeoutMs,
        );
      }
      this.opts.log.info('masked update sent', { round: r.roundId, bytes: total, weight });
      this.setStatus({
        lastRound: {
          roundId: r.roundId,
          outcome: 'uploaded',
          loss: u.loss,
          steps: u.steps,
          epsilon: u.epsilon,
          finishedAt: new Date().toISOString(),
        },
      });
    } catch (err) {
      this.opts.log.error('sending the masked update failed; this site drops out of the round', {
        round: r.roundId,
        error: (err as Error).message,
      });
      this.finishRound('failed', (err as Error).message);
    }
  }

  private abandonRound(reason: string): void {
    const r = this.round;
    if (!r || r.done) return;
    r.cancelled = true;
    this.opts.log.warn('left a round unfinished', { round: r.roundId, reason });
    this.finishRound('failed', reason);
  }

  private finishRound(outcome: 'uploaded' | 'failed', reason?: string): void {
    const r = this.round;
    if (!r || r.done) return;
    r.done = true;
    this.setStatus({
      currentRound: null,
      roundsTaken: this.status.roundsTaken + (outcome === 'uploaded' ? 1 : 0),
      ...(outcome === 'failed'
        ? { lastRound: { roundId: r.roundId, outcome, reason, finishedAt: new Date().toISOString() } }
        : {}),
    });
  }

  private async onEvaluate(m: Message<'round.evaluate'>): Promise<void> {
    const { log } = this.opts;
    try {
      const e = await evaluateLocally({
        checkpoint: await this.fetchModel(m.modelHash, m.modelBytes),
        fallback: this.round?.start.plan,
        data: (size) => this.data!.get(size),
      });
      this.channel.emit('round.eval-report', { roundId: m.roundId, modelHash: m.modelHash, ...e });
      await writeFile(join(this.modelsDir, 'latest'), `${m.modelHash}\n`);
      this.setStatus({
        lastEval: { roundId: m.roundId, modelHash: m.modelHash, ...e },
        latestModel: join(this.modelsDir, `${m.modelHash}.safetensors`),
      });
      log.info('evaluated the new global model', {
        round: m.roundId,
        maeHU: e.mae,
        psnr: e.psnr,
        ssim: e.ssim,
        slices: e.count,
      });
    } catch (err) {
      log.error('evaluating the new global model failed', {
        round: m.roundId,
        error: (err as Error).message,
      });
    }
  }

  /** A model by hash: from the local cache, else fetched in verified chunks (resumed after a reconnect). */
  private async fetchModel(sha: string, size: number): Promise<Uint8Array> {
    const file = join(this.modelsDir, `${sha}.safetensors`);
    if (existsSync(file)) {
      const cached = new Uint8Array(await readFile(file));
      if (sha256Hex(cached) === sha) return cached;
    }
    const existing = this.transfers.get(sha);
    const bytes = await new Promise<Uint8Array>((resolve, reject) => {
      if (existing) {
        const prev = { resolve: existing.resolve, reject: existing.reject };
        existing.resolve = (b) => {
          prev.resolve(b);
          resolve(b);
        };
        existing.reject = (e) => {
          prev.reject(e);
          reject(e);
        };
        return;
      }
      this.transfers.set(sha, {
        receiver: new ChunkReceiver(sha, size, sha, 4 * 1024 ** 3),
        resolve,
        reject,
      });
      this.channel.emit('blob.request', { sha256: sha, offset: 0 });
    });
    await mkdir(this.modelsDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, file);
    return bytes;
  }

  private onBlobChunk(c: Message<'blob.chunk'>): void {
    const t = this.transfers.get(c.transferId);
    if (!t) return;
    try {
      t.receiver.accept({ ...c, data: new Uint8Array(c.data) });
      if (t.receiver.complete) {
        this.transfers.delete(c.transferId);
        t.resolve(t.receiver.result());
      }
    } catch (err) {
      this.transfers.delete(c.transferId);
      t.reject(err as Error);
    }
  }

  /** Disconnects and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.disconnect();
    this.setStatus({ connection: 'stopped', currentRound: null });
    this.stopResolve?.();
  }
}
