import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createProgress } from '@fedsynth/cli-kit';
import type { BackendName } from '@fedsynth/diffusion';
import {
  controlScale,
  type EvaluationReport,
  type Message,
  type ModelSource,
  type ModelStore,
  type ParticipantEvent,
  ParticipantSession,
  PROTOCOL_VERSION,
  parseMessage,
  RdpAccountant,
  type RoundStart,
  SERVER_TO_AGENT,
  type SiteFigures,
  socketParser,
  type TrainingResult,
} from '@fedsynth/protocol';
import { io, type Socket } from 'socket.io-client';
import { AuditLog } from '../audit/audit-log';
import { type AgentConfig, type AgentConfigSources, modalityMatchOf } from '../config/agent-config';
import { declineReason, readControls } from '../controls/site-controls';
import type { IdentityKey } from '../identity/identity-key';
import { privatizeUpdate, updateWeight } from '../privacy/dp';
import { AGENT_VERSION } from '../version';
import { AuditedSocket } from './audited-socket';
import { readControl, scaled } from './control-variates';
import type { Enrollment } from './enrollment';
import {
  DataCache,
  effectivePlan,
  evaluateLocally,
  type LocalEval,
  type OptimizerCarry,
  taskOf,
  trainLocally,
} from './local-training';
import type { Logger } from './logger';
import { type AgentStatus, writeStatus } from './status';
import { versionRefusalAdvice } from './upgrade-advice';

/** Refusals after which reconnecting cannot help: the agent stops and says what to do. */
const FATAL = new Set(['UNKNOWN_KEY', 'REVOKED', 'WRONG_VERSION', 'BAD_SIGNATURE']);

export interface SiteAgentOptions {
  /** The settings the daemon started with. */
  config: AgentConfig;
  /**
   * Where `config` was read from (agent.json, the environment and the flags of the daemon): the
   * controls are read again from the same sources at each round start.
   */
  configSources: AgentConfigSources;
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
 * The protocol itself (login answer, round-start checks, SecAgg stages, model download, masked
 * upload) is libs/protocol's ParticipantSession; this class is the site around it.
 */
export class SiteAgent {
  readonly audit: AuditLog;
  private socket!: Socket;
  private channel!: AuditedSocket;
  private readonly session: ParticipantSession;
  private readonly data: DataCache | null;
  /** The federation asks for no plain-text counts (from the login's answer). */
  private hideCounts = false;
  private readonly accountant: RdpAccountant;
  /** plan.keepOptimizer: the optimizer state of the last round trained, by federation (memory only). */
  private readonly keptOptimizer = new Map<string, OptimizerCarry>();
  /** SCAFFOLD: the site's control variate after its last round, by federation (memory only, never sent as is). */
  private readonly keptControl = new Map<string, Float32Array>();
  private readonly modelsDir: string;
  private readonly status: AgentStatus;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private refusedDelayMs = 2000;
  /** The protocol version the coordinator announced in its last login challenge. */
  private coordinatorProtocol: number | null = null;
  private stopped = false;
  private onFatal: ((err: Error) => void) | null = null;

  constructor(private readonly opts: SiteAgentOptions) {
    const { config } = opts;
    this.audit = new AuditLog(join(config.stateDir, 'audit.jsonl'));
    this.data = config.dataDir
      ? new DataCache(config.dataDir, config.modalities, modalityMatchOf(config))
      : null;
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
    this.session = new ParticipantSession({
      identity: opts.identity,
      coordinatorKey: new Uint8Array(Buffer.from(opts.enrollment.coordinatorKey, 'base64')),
      agentVersion: AGENT_VERSION,
      transport: {
        send: (event, payload) => this.channel.emit(event, payload),
        sendWithAck: async (event, payload, timeoutMs, note) => {
          await this.channel.emitWithAck(event, payload, timeoutMs, note);
        },
      },
      train: (start, model, cancelled, control) => this.train(start, model, cancelled, control),
      evaluate: (request, model, start) => this.evaluate(request, model, start),
      decline: (start) => this.declineReason() ?? this.taskProblem(start),
      models: this.modelStore(),
      log: opts.log,
      onEvent: (e) => this.onRoundEvent(e),
    });
  }

  private setStatus(patch: Partial<AgentStatus>): void {
    Object.assign(this.status, patch, { updatedAt: new Date().toISOString() });
    try {
      writeStatus(this.opts.config.stateDir, this.status);
    } catch (err) {
      this.opts.log.warn('cannot write status file', { error: (err as Error).message });
    }
  }

  /**
   * Takes the inventory of the site's modalities (what a round's task is checked against), then
   * connects and runs until stop(); rejects when the coordinator refuses this site for good.
   */
  async run(): Promise<void> {
    if (this.data)
      try {
        await this.data.inventory();
      } catch (err) {
        this.opts.log.error('cannot read the local data', { error: (err as Error).message });
      }
    return new Promise((resolve, reject) => {
      this.onFatal = (err) => {
        // The run ends with the refusal (the CLI prints it and exits 1), not as a requested stop.
        this.stopResolve = null;
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
    // Everything the coordinator sends goes to the session, which validates it; the agent itself
    // only reacts to logins and refusals.
    for (const event of SERVER_TO_AGENT) s.on(event, (raw: unknown) => void this.session.receive(event, raw));
    s.on('auth.challenge', (raw: unknown) => {
      const v = (raw as { protocolVersion?: unknown } | null)?.protocolVersion;
      this.coordinatorProtocol = typeof v === 'number' ? v : null;
    });
    s.on('auth.ok', (raw: unknown) => {
      const m = this.parse('auth.ok', raw);
      if (!m) return;
      this.refusedDelayMs = 2000;
      this.setStatus({ connection: 'connected', lastError: null });
      log.info('connected', { site: m.siteName, coordinator: enrollment.coordinatorUrl });
      this.hideCounts = m.hideCounts === true;
      void this.hello();
    });
    s.on('protocol.error', (raw: unknown) => {
      const e = this.parse('protocol.error', raw);
      if (e) this.onProtocolError(e);
    });
    s.connect();
  }

  private parse<N extends 'auth.ok' | 'protocol.error'>(event: N, raw: unknown): Message<N> | null {
    try {
      return parseMessage(event, raw);
    } catch {
      return null; // the session logs it
    }
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

  private onProtocolError(e: Message<'protocol.error'>): void {
    const { log } = this.opts;
    if (e.code === 'NOT_APPROVED') {
      this.setStatus({ connection: 'refused', lastError: e.message });
      log.info('waiting for an admin to approve this site', { retryInSeconds: this.refusedDelayMs / 1000 });
      return;
    }
    if (e.code === 'WRONG_VERSION') {
      // Retrying cannot help: site IT must upgrade one side, and is told which and how.
      const advice = versionRefusalAdvice({
        coordinatorUrl: this.opts.enrollment.coordinatorUrl,
        coordinatorProtocol: this.coordinatorProtocol,
        message: e.message,
      });
      this.setStatus({ connection: 'refused', lastError: advice });
      log.error(advice, {
        code: e.code,
        agentProtocol: PROTOCOL_VERSION,
        coordinatorProtocol: this.coordinatorProtocol,
      });
      this.onFatal?.(new Error(advice));
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
  }

  /**
   * The site's controls now: agent.json re-read under the environment and flags the daemon started
   * with, so pausing takes effect without a restart and FEDSYNTH_AGENT_* settings keep holding.
   */
  private controls(): AgentConfig {
    return readControls(this.opts.configSources, this.opts.config, (err) =>
      this.opts.log.warn('cannot re-read the settings; keeping those the agent started with', {
        error: err.message,
      }),
    );
  }

  /** Why this site cannot train a round's task (an unknown modality, data without one), or null. */
  private taskProblem(start: RoundStart): string | null {
    try {
      return this.data?.lacks(taskOf(start)) ?? null;
    } catch (err) {
      return `this agent cannot train the round's task: ${(err as Error).message}`;
    }
  }

  /** Why this site would decline a round now, or null when it takes part. */
  private declineReason(): string | null {
    return declineReason(this.controls(), { hasData: this.data !== null });
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
      ...(this.hideCounts ? {} : { sampleCount }),
      accepting: reason === null,
      ...(reason ? { reason } : {}),
    });
  }

  /** Models by sha256 in `models/` (the session checks the hash of what it reads back). */
  private modelStore(): ModelStore {
    const file = (sha: string) => join(this.modelsDir, `${sha}.safetensors`);
    return {
      load: async (sha) => (existsSync(file(sha)) ? new Uint8Array(await readFile(file(sha))) : null),
      save: async (sha, bytes) => {
        await mkdir(this.modelsDir, { recursive: true, mode: 0o700 });
        const tmp = `${file(sha)}.tmp-${process.pid}`;
        await writeFile(tmp, bytes);
        await rename(tmp, file(sha));
      },
    };
  }

  /** Trains on local data from the global model, then clips and (optionally) noises the update. */
  private async train(
    start: RoundStart,
    model: ModelSource,
    cancelled: () => boolean,
    controlSource: ModelSource | null = null,
  ): Promise<TrainingResult> {
    const { log } = this.opts;
    // The site's limits as its controls stand at the round start (agent.json may have changed).
    const limits = this.controls();
    const { steps, batch } = effectivePlan(start.plan, limits);
    log.info('local training', { round: start.secAgg.roundId, steps, batch });
    const checkpoint = await model();
    const data = await this.data!.get(start.plan.size, taskOf(start));
    const bar = createProgress(`round ${start.roundNumber}: local training`, steps, {
      json: !this.opts.progress,
    });
    const carried = start.plan.keepOptimizer ? this.keptOptimizer.get(start.federationId) : undefined;
    const scaffold = start.plan.scaffold
      ? {
          c: controlSource ? readControl(await controlSource(), 'the global control variate') : null,
          ci: this.keptControl.get(start.federationId) ?? null,
        }
      : undefined;
    const u = await trainLocally({
      checkpoint,
      plan: start.plan,
      limits,
      data,
      seed: (start.roundNumber * 7919 + (Date.now() % 7919)) >>> 0,
      backend: this.opts.backend.backend as BackendName,
      optimizer: carried,
      scaffold,
      onPlan: (line) => log.info('training plan', { round: start.secAgg.roundId, plan: line }),
      onStep: (s, _t, loss) => {
        if (cancelled()) throw new Error('the round ended before local training finished');
        bar.tick(s, { loss });
      },
    });
    bar.done({ loss: u.loss });
    if (u.optimizerRestart)
      log.warn('optimizer state not carried over', {
        round: start.secAgg.roundId,
        reason: u.optimizerRestart,
      });
    else if (carried)
      log.info('optimizer state carried over from the previous round', {
        round: start.secAgg.roundId,
        fromStep: carried.arrays.find((a) => a.name === 'step')?.data[0] ?? 0,
      });
    if (u.optimizer) this.keptOptimizer.set(start.federationId, u.optimizer);
    else this.keptOptimizer.delete(start.federationId);
    if (u.controlRestart)
      log.warn('control variate not carried over', { round: start.secAgg.roundId, reason: u.controlRestart });
    if (u.control) this.keptControl.set(start.federationId, u.control);
    // Differential privacy: bound each site's influence, then add this site's share of the noise.
    const { norm, factor, epsilon } = privatizeUpdate(
      u.delta,
      start.plan.dp,
      start.secAgg.threshold,
      this.accountant,
    );
    if (epsilon !== null)
      await writeFile(
        join(this.opts.config.stateDir, 'privacy.json'),
        JSON.stringify(this.accountant.toJSON()),
        { mode: 0o600 },
      );
    const c = start.secAgg.quantization.clip;
    log.info('local training done', {
      round: start.secAgg.roundId,
      steps: u.steps,
      loss: u.loss,
      seconds: u.ms / 1000,
      updateNorm: norm,
      dpClipFactor: factor,
      valuesBeyondQuantizationClip: beyondClip(u.delta, c),
      ...(epsilon !== null ? { epsilon } : {}),
    });
    const weight = updateWeight(
      data.train.length,
      start.secAgg.quantization.maxWeight,
      start.plan.dp.noiseMultiplier > 0,
    );
    const report = { loss: u.loss, steps: u.steps, epsilon };
    // SCAFFOLD: the new control variate follows the update inside the masked vector, scaled to an
    // update's size (libs/protocol/src/scaffold.ts).
    const control = u.control ? scaled(u.control, controlScale(start.plan)) : undefined;
    if (control) {
      log.info('SCAFFOLD control variate for the masked vector', {
        round: start.secAgg.roundId,
        corrected: scaffold?.ci !== null,
        valuesBeyondQuantizationClip: beyondClip(control, c),
      });
    }
    if (!start.metrics) return { delta: u.delta, weight, report, ...(control ? { control } : {}) };
    // The round wants the figures inside the masked vector, so they are measured before the
    // upload: the model this round started from (the new one does not exist yet) is scored now.
    // They are appended after DP: the noise covers the update only.
    if (cancelled()) throw new Error('the round ended before local training finished');
    const e = await this.score(checkpoint, start);
    await this.keepEvaluation(
      start.secAgg.roundId,
      start.secAgg.modelHash,
      e,
      "scored the round's starting model; its figures leave only inside the masked vector",
    );
    return {
      delta: u.delta,
      weight,
      report,
      figures: siteFigures(u.loss, e),
      ...(control ? { control } : {}),
    };
  }

  /** A model's figures on the validation split (fixed-seed DDIM, see evaluateLocally). */
  private score(checkpoint: Uint8Array, start: RoundStart): Promise<LocalEval> {
    return evaluateLocally({
      checkpoint,
      fallback: start.plan,
      data: (size) => this.data!.get(size, taskOf(start)),
      threads: this.controls().trainingThreads,
    });
  }

  /** Logs a model's figures here and keeps the model as the site's latest one. */
  private async keepEvaluation(
    roundId: string,
    modelHash: string,
    e: LocalEval,
    what: string,
  ): Promise<void> {
    await writeFile(join(this.modelsDir, 'latest'), `${modelHash}\n`);
    this.setStatus({
      lastEval: { roundId, modelHash, ...e },
      latestModel: join(this.modelsDir, `${modelHash}.safetensors`),
    });
    this.opts.log.info(what, {
      round: roundId,
      mae: e.mae,
      psnr: e.psnr,
      ssim: e.ssim,
      slices: e.count,
      ...(e.nearestSynth !== undefined
        ? { nearestTrainingSliceSynthetic: e.nearestSynth, nearestTrainingSliceReal: e.nearestReal }
        : {}),
    });
  }

  /** Scores the new global model on the validation split and keeps it as the site's latest model. */
  private async evaluate(
    m: Message<'round.evaluate'>,
    model: ModelSource,
    start: RoundStart,
  ): Promise<EvaluationReport> {
    const e = await this.score(await model(), start);
    await this.keepEvaluation(m.roundId, m.modelHash, e, 'evaluated the new global model');
    // With counts hidden every site weighs the same in the global figures: no slice count is sent.
    return this.hideCounts ? { ...e, count: Math.min(e.count, 1) } : e;
  }

  /** The status file follows the session's rounds. */
  private onRoundEvent(e: ParticipantEvent): void {
    const now = new Date().toISOString();
    if (e.type === 'declined') {
      this.setStatus({
        lastRound: { roundId: e.roundId, outcome: 'declined', reason: e.reason, finishedAt: now },
      });
      return;
    }
    switch (e.state) {
      case 'round-accepted':
        this.setStatus({ currentRound: { roundId: e.roundId, stage: e.state, startedAt: now } });
        return;
      case 'masked-input-sent':
        this.setStatus({
          currentRound: this.currentRound(e.roundId, e.state),
          lastRound: { roundId: e.roundId, outcome: 'uploaded', ...e.report, finishedAt: now },
        });
        return;
      case 'unmasked':
        this.setStatus({ currentRound: null, roundsTaken: this.status.roundsTaken + 1 });
        return;
      case 'failed':
        this.setStatus({
          currentRound: null,
          lastRound: { roundId: e.roundId, outcome: 'failed', reason: e.reason, finishedAt: now },
        });
        return;
      case 'evaluating':
      case 'done':
        return;
      default:
        this.setStatus({ currentRound: this.currentRound(e.roundId, e.state) });
    }
  }

  private currentRound(roundId: string, stage: string): AgentStatus['currentRound'] {
    const startedAt =
      this.status.currentRound?.roundId === roundId ? this.status.currentRound.startedAt : null;
    return { roundId, stage, startedAt: startedAt ?? new Date().toISOString() };
  }

  /** Disconnects and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.session.abandon('the agent stopped');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.disconnect();
    this.setStatus({ connection: 'stopped', currentRound: null });
    this.stopResolve?.();
  }
}

/**
 * What a site appends to its masked vector: the round's training loss and its scores of the
 * round's starting model (left out, so sent as absent, when it has no validation slice).
 */
export function siteFigures(loss: number, e: LocalEval): SiteFigures {
  if (e.count === 0) return { train_loss: loss };
  return {
    train_loss: loss,
    mae: e.mae,
    psnr: e.psnr,
    ssim: e.ssim,
    ...(e.nearestSynth !== undefined && e.nearestReal !== undefined
      ? { nearest_synth: e.nearestSynth, nearest_real: e.nearestReal }
      : {}),
  };
}

/** How many values the secure aggregation's quantization will clip (|v| > clip). */
function beyondClip(values: Float32Array, clip: number): number {
  let n = 0;
  for (const v of values) if (Math.abs(v) > clip) n++;
  return n;
}
