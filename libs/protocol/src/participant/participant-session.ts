import type { SecAggClient } from '@fedsynth/secure-agg';
import { sha256Hex } from '../chunked';
import {
  type AGENT_TO_SERVER,
  type Message,
  ProtocolError,
  parseMessage,
  SERVER_TO_AGENT,
  signedAuthResponse,
} from '../schemas';
import { maskedTransferId, uint32ToChunk } from '../secagg-messages';
import { encodeFigures, type SiteFigures } from '../secure-metrics';
import { ModelDownloads } from './model-downloads';
import {
  inAggregation,
  type ParticipantState,
  ROUND_MESSAGE_STATE,
  type RoundMessageName,
} from './participant-state';
import { checkRoundStart, type RoundStart, type SecAggClientOptions } from './round-start-check';

/** Events an agent sends. */
export type AgentMessageName = (typeof AGENT_TO_SERVER)[number];
/** Events the coordinator sends. */
export type ServerMessageName = (typeof SERVER_TO_AGENT)[number];

/** How a participant session reaches the coordinator (a socket.io connection, or memory in tests). */
export interface ParticipantTransport {
  /** Sends a message. */
  send<N extends AgentMessageName>(event: N, payload: Message<N>): void;
  /**
   * Sends a message and resolves once the coordinator acknowledges it; rejects when the coordinator
   * refuses it, the connection drops, or no acknowledgement came within `timeoutMs`. `note` says
   * what the message carries that its payload does not show (for the site's audit log).
   */
  sendWithAck<N extends AgentMessageName>(
    event: N,
    payload: Message<N>,
    timeoutMs: number,
    note?: OutboundNote,
  ): Promise<void>;
}

/** What an outbound message carries unseen: the figures masked inside a chunk of the masked vector. */
export interface OutboundNote {
  inside: string[];
}

/** What local training hands back. */
export interface TrainingResult {
  /** The update: one value per model parameter in canonical order, clipped and noised as the site requires. */
  delta: Float32Array;
  /** The site's weight in the weighted mean (e.g. its training slices), in [0, the round's maxWeight]. */
  weight: number;
  /**
   * Aggregate figures of the training, sent as `round.train-report`; in a round whose start lists
   * `metrics` only the steps are sent (the loss goes into the masked vector through `figures`).
   */
  report: { loss: number; steps: number; epsilon: number | null };
  /**
   * The site's figures for a round whose start lists `metrics` (training loss, scores of the
   * round's starting model): appended to the masked update, never sent in plain text.
   */
  figures?: SiteFigures;
  /**
   * In a SCAFFOLD round (plan.scaffold): the site's new control variate times controlScale(plan),
   * as many values as the update; it follows the update inside the masked vector.
   */
  control?: Float32Array;
}

/** What the masked upload sends: the update, with the figure slots appended when the round asks. */
interface PreparedUpdate {
  vector: Float32Array;
  weight: number;
  report: TrainingResult['report'];
}

/** A model's scores on the site's validation split, sent as `round.eval-report`. */
export type EvaluationReport = Omit<Message<'round.eval-report'>, 'roundId' | 'modelHash'>;

/** The round's model, fetched (or read from the store) when first called; later calls share it. */
export type ModelSource = () => Promise<Uint8Array>;

/** Where a site keeps the models it fetched (the session checks their hash when it reads one back). */
export interface ModelStore {
  /** The stored bytes of model `sha256`, or null when it is not stored. */
  load(sha256: string): Promise<Uint8Array | null>;
  save(sha256: string, bytes: Uint8Array): Promise<void>;
}

/** Where the session's log lines go. */
export interface ParticipantLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** What the session tells its owner: each state a round enters, and each round it declines. */
export type ParticipantEvent =
  | { type: 'declined'; roundId: string; reason: string }
  | {
      type: 'state';
      roundId: string;
      state: ParticipantState;
      /** Why the round failed (state `failed`). */
      reason?: string;
      /** The training figures sent (state `masked-input-sent`). */
      report?: TrainingResult['report'];
    };

export interface ParticipantOptions {
  /** The site's enrolled Ed25519 identity (tweetnacl layout: the 64-byte secret key ends with the public key). */
  identity: { publicKey: Uint8Array; secretKey: Uint8Array };
  /**
   * The coordinator's Ed25519 key the site pinned at enrollment: round starts it did not sign are
   * declined. null takes every round start unchecked (protocol tests only).
   */
  coordinatorKey: Uint8Array | null;
  /** Sent in the login answer. */
  agentVersion: string;
  transport: ParticipantTransport;
  /**
   * Local training for an accepted round; starts when the round is accepted and runs while keys are
   * exchanged. It should give up once `cancelled()` is true (the round ended). A rejection is sent
   * to the coordinator as `train.failed`, so the round goes on without this site at once.
   */
  train(
    start: RoundStart,
    model: ModelSource,
    cancelled: () => boolean,
    /** The global control variate (safetensors) when the round's plan names one (SCAFFOLD), else null. */
    control: ModelSource | null,
  ): Promise<TrainingResult>;
  /** Scores the new global model on the site's validation split; null sends no report. */
  evaluate(
    request: Message<'round.evaluate'>,
    model: ModelSource,
    start: RoundStart,
  ): Promise<EvaluationReport | null>;
  /** Why the site declines a round it could take part in (its controls), or null to take part. */
  decline?(start: RoundStart): string | null;
  /** Models kept between rounds; without one every model is fetched. */
  models?: ModelStore;
  /** Largest model the site fetches, in bytes (default 4 GiB). */
  maxModelBytes?: number;
  log?: ParticipantLog;
  onEvent?(event: ParticipantEvent): void;
  /** Makes the round's SecAggClient (tests inject seeded randomness or a misbehaving client). */
  createClient?(options: SecAggClientOptions): SecAggClient;
}

/** A round this site accepted. */
class Round {
  state: ParticipantState = 'idle';
  /** Local training, from the round's acceptance until the masked upload ends (then let go with its vector). */
  update: Promise<PreparedUpdate> | null = null;
  /** The masked upload, once the share inbox arrived. */
  upload: Promise<void> | null = null;

  constructor(
    readonly id: string,
    readonly start: RoundStart,
    readonly client: SecAggClient,
  ) {}
}

const SERVER_EVENTS: ReadonlySet<string> = new Set<string>(SERVER_TO_AGENT);

const SILENT: ParticipantLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= f();
    return p;
  };
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * One site's side of the protocol: it answers the login challenge, checks each round start (the
 * coordinator's signature with the pinned key, that the site takes part, a valid SecAgg
 * configuration, the site's own decline policy), drives libs/secure-agg's SecAggClient through the
 * stages, fetches models by sha256 in verified chunks (resumed after a reconnect), trains and
 * evaluates through the functions it is given, and uploads the masked update in acknowledged chunks.
 *
 * Every inbound message is validated with parseMessage and taken only in the state it belongs to
 * (ROUND_MESSAGE_STATE) and for the current round; anything else is refused with a log line and
 * changes nothing, so the coordinator cannot make the site skip a stage, repeat one, or mix rounds.
 * It knows nothing of sockets: its owner passes inbound messages to receive() and gives it a
 * transport for outbound ones.
 */
export class ParticipantSession {
  private round: Round | null = null;
  private readonly downloads: ModelDownloads;
  private readonly log: ParticipantLog;

  constructor(private readonly opts: ParticipantOptions) {
    this.log = opts.log ?? SILENT;
    this.downloads = new ModelDownloads(
      (m) => this.opts.transport.send('blob.request', m),
      opts.maxModelBytes ?? 4 * 1024 ** 3,
    );
  }

  /** The state of the current (or last) round; `idle` before the first. */
  get state(): ParticipantState {
    return this.round?.state ?? 'idle';
  }

  /** The current (or last) round's id. */
  get roundId(): string | null {
    return this.round?.id ?? null;
  }

  /** Model downloads in progress, with the bytes each has. */
  get downloading(): { sha256: string; offset: number }[] {
    return this.downloads.pending;
  }

  /**
   * Takes one message from the coordinator. It resolves once the message is handled (for a share
   * inbox: once the masked upload ended) and never rejects: a malformed message, or one for another
   * stage or round, is logged and ignored.
   */
  async receive(event: string, payload: unknown): Promise<void> {
    if (!SERVER_EVENTS.has(event)) {
      this.log.warn('ignored a message the coordinator does not send', { event });
      return;
    }
    try {
      await this.dispatch(event as ServerMessageName, payload);
    } catch (err) {
      if (err instanceof ProtocolError)
        this.log.error('ignored a malformed message from the coordinator', { event, error: err.message });
      else this.log.error(`handling ${event} failed`, { event, error: messageOf(err) });
    }
  }

  /** Ends the round in progress (the agent stops): training is cancelled, nothing more is sent for it. */
  abandon(reason: string): void {
    const r = this.round;
    if (r && inAggregation(r.state)) this.fail(r, reason);
  }

  private dispatch(event: ServerMessageName, payload: unknown): void | Promise<void> {
    switch (event) {
      case 'auth.challenge':
        return this.login(parseMessage(event, payload));
      case 'auth.ok':
        parseMessage(event, payload);
        return this.loggedIn();
      case 'protocol.error':
        return this.refused(parseMessage(event, payload));
      case 'round.start':
        return this.roundStart(parseMessage(event, payload));
      case 'blob.chunk': {
        const chunk = parseMessage(event, payload);
        if (!this.downloads.receive(chunk))
          this.log.warn('ignored a chunk of a model this site is not fetching', {
            transfer: chunk.transferId,
          });
        return;
      }
      case 'secagg.roster': {
        const m = parseMessage(event, payload);
        const r = this.expect(event, m.roundId);
        if (r) this.step(r, 'shares-sent', 'secagg.shares', () => r.client.shareKeys(m));
        return;
      }
      case 'secagg.inbox':
        return this.inbox(parseMessage(event, payload));
      case 'secagg.survivors':
        return this.survivors(parseMessage(event, payload));
      case 'secagg.consistency-result': {
        const m = parseMessage(event, payload);
        const r = this.expect(event, m.roundId);
        if (r && this.step(r, 'unmasked', 'secagg.unmask', () => r.client.unmask(m)))
          this.log.info('secure aggregation done', { round: r.id, survivors: m.survivors.length });
        return;
      }
      case 'round.evaluate':
        return this.evaluate(parseMessage(event, payload));
    }
  }

  private login(c: Message<'auth.challenge'>): void {
    const skewMs = Date.now() - Date.parse(c.serverTime);
    if (Math.abs(skewMs) > 60_000)
      this.log.warn('clock differs from the coordinator by more than a minute', { skewMs });
    this.opts.transport.send(
      'auth.response',
      signedAuthResponse(new Uint8Array(c.nonce), this.opts.identity, this.opts.agentVersion),
    );
  }

  /** A (re)login: a round in progress ended with the connection; downloads go on from where they stopped. */
  private loggedIn(): void {
    const r = this.round;
    if (r && inAggregation(r.state)) this.fail(r, 'the connection was lost during the round');
    this.downloads.resume();
  }

  private refused(e: Message<'protocol.error'>): void {
    if (e.ref && this.downloads.refuse(e.ref, `${e.code}: ${e.message}`))
      this.log.warn('the coordinator refused a model download', {
        model: e.ref,
        code: e.code,
        message: e.message,
      });
  }

  private roundStart(m: RoundStart): void {
    const roundId = m.secAgg.roundId;
    const check = checkRoundStart(m, this.opts.identity, this.opts.coordinatorKey, this.opts.createClient);
    if (!check.ok) {
      this.declineRound(roundId, check.reason);
      return;
    }
    const reason = this.opts.decline?.(m) ?? null;
    if (reason !== null) {
      this.declineRound(roundId, reason);
      return;
    }
    // The coordinator runs one round at a time: a new start means the previous round ended there.
    const previous = this.round;
    if (previous && inAggregation(previous.state))
      this.fail(previous, 'the coordinator started another round');
    const r = new Round(roundId, m, check.client);
    this.round = r;
    this.log.info('joining round', {
      round: roundId,
      number: m.roundNumber,
      task: `${m.task.sources.join('+')} -> ${m.task.target}${m.task.context ? ` (2.5D, ${m.task.context} each side)` : ''}`,
      participants: check.config.participants.length,
    });
    this.enter(r, 'round-accepted');
    this.opts.transport.send('round.reply', { roundId, accept: true });
    const update = this.train(r);
    r.update = update;
    // A failed training (data gone, out of memory, a bad model) is reported at once, so the round
    // goes on without this site instead of waiting for it until the stage deadline.
    update.catch((err: unknown) => this.trainingFailed(r, err));
    this.step(r, 'keys-advertised', 'secagg.advertise', () => r.client.advertiseKeys());
  }

  private declineRound(roundId: string, reason: string): void {
    this.log.info('declined a round', { round: roundId, reason });
    this.opts.transport.send('round.reply', { roundId, accept: false, reason: reason.slice(0, 300) });
    this.emit({ type: 'declined', roundId, reason });
  }

  /**
   * Fetches the model when training asks for it, trains, checks the update fits the round, and
   * appends the figure slots when the round asks for them (the update itself is then let go).
   */
  private async train(r: Round): Promise<PreparedUpdate> {
    const config = r.client.config;
    const model = once(() => this.model(config.modelHash, r.start.modelBytes));
    const ref = r.start.plan.scaffold?.control;
    // Not kept in the model store: it is no model, and the next round brings a new one.
    const control = ref ? once(() => this.downloads.fetch(ref.sha256, ref.bytes)) : null;
    const result = await this.opts.train(
      r.start,
      model,
      () => this.round !== r || r.state === 'failed',
      control,
    );
    const slots = r.start.metrics ?? [];
    const scaffold = r.start.plan.scaffold !== undefined;
    const n = config.vectorLength - slots.length;
    const m = scaffold ? n / 2 : n;
    const figuresToo = slots.length ? ` (and ${slots.length} figures)` : '';
    if (!(result.delta instanceof Float32Array) || result.delta.length !== m)
      throw new Error(
        `the update has ${result.delta?.length} values; the round expects ${m}${scaffold ? ' (and as many for the control variate)' : ''}${figuresToo}`,
      );
    if (scaffold) {
      if (!(result.control instanceof Float32Array) || result.control.length !== m)
        throw new Error(
          `the round is a SCAFFOLD round: the control variate has ${result.control?.length ?? 'no'} values; the round expects ${m}`,
        );
      const bad = result.control.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new Error(`the control variate's value ${bad} is ${result.control[bad]}`);
    }
    const { weight, report } = result;
    if (slots.length === 0 && !scaffold) return { vector: result.delta, weight, report };
    if (slots.length > 0 && !result.figures)
      throw new Error('the round asks for figures in the masked vector; training gave none');
    const vector = new Float32Array(config.vectorLength);
    vector.set(result.delta, 0);
    if (scaffold) {
      vector.set(result.control!, m);
      this.log.info('the control variate goes inside the masked vector, after the update', { round: r.id });
    }
    if (slots.length > 0) {
      const encoded = encodeFigures(slots, result.figures!, config.quantization.clip, (message, fields) =>
        this.log.warn(message, { round: r.id, ...fields }),
      );
      vector.set(encoded, n);
      this.log.info('the figures go inside the masked vector, not in plain text', {
        round: r.id,
        figures: slots.map((s) => s.name),
      });
    }
    return { vector, weight, report };
  }

  private trainingFailed(r: Round, err: unknown): void {
    if (this.round !== r || !inAggregation(r.state)) return; // the round ended first
    const reason = messageOf(err).slice(0, 300);
    this.log.error('local training failed; this site drops out of the round', {
      round: r.id,
      error: messageOf(err),
    });
    this.opts.transport.send('train.failed', { roundId: r.id, reason });
    this.fail(r, reason);
  }

  /** Model bytes by hash: from the store when it holds them intact, else fetched (and then stored). */
  private async model(sha256: string, size: number): Promise<Uint8Array> {
    const store = this.opts.models;
    if (store) {
      try {
        const stored = await store.load(sha256);
        if (stored && sha256Hex(stored) === sha256) return stored;
      } catch (err) {
        this.log.warn('cannot read a stored model; fetching it', { model: sha256, error: messageOf(err) });
      }
    }
    const bytes = await this.downloads.fetch(sha256, size);
    if (store)
      await store.save(sha256, bytes).catch((err: unknown) => {
        this.log.warn('cannot store the model', { model: sha256, error: messageOf(err) });
      });
    return bytes;
  }

  /** The current round, if `event` of round `roundId` may be taken now; otherwise says why not. */
  private expect(event: RoundMessageName, roundId: string): Round | null {
    const r = this.round;
    if (!r || r.id !== roundId) {
      this.log.warn(`ignored ${event} of a round this site is not in`, {
        event,
        round: roundId,
        current: r?.id ?? null,
      });
      return null;
    }
    const wanted = ROUND_MESSAGE_STATE[event];
    if (r.state !== wanted) {
      this.log.warn(`refused ${event} in state ${r.state}`, {
        event,
        round: roundId,
        state: r.state,
        expected: wanted,
      });
      return null;
    }
    return r;
  }

  /** Runs a SecAggClient step; on success enters `next` and sends its answer, on a refusal the round fails. */
  private step<N extends AgentMessageName>(
    r: Round,
    next: ParticipantState,
    event: N,
    produce: () => Message<N>,
  ): boolean {
    let out: Message<N>;
    try {
      out = produce();
    } catch (err) {
      this.log.error(`secure aggregation failed in state ${r.state}`, { round: r.id, error: messageOf(err) });
      this.fail(r, messageOf(err));
      return false;
    }
    // The state changes before the answer leaves: a transport may deliver the reply at once.
    this.enter(r, next);
    this.opts.transport.send(event, out);
    return true;
  }

  private inbox(m: Message<'secagg.inbox'>): Promise<void> | undefined {
    const r = this.expect('secagg.inbox', m.roundId);
    if (!r) return;
    this.enter(r, 'sending-masked-input');
    r.upload = this.sendMaskedInput(r, m);
    return r.upload;
  }

  private async sendMaskedInput(r: Round, inbox: Message<'secagg.inbox'>): Promise<void> {
    const update = r.update;
    if (!update) return;
    try {
      await this.upload(r, inbox, update);
    } finally {
      // The update vector is not needed any more: a site holds at most one.
      r.update = null;
    }
  }

  /** Waits for training, reports it, then uploads the masked update chunk by acknowledged chunk. */
  private async upload(
    r: Round,
    inbox: Message<'secagg.inbox'>,
    update: Promise<PreparedUpdate>,
  ): Promise<void> {
    const live = () => this.round === r && r.state === 'sending-masked-input';
    let u: PreparedUpdate;
    try {
      u = await update;
    } catch {
      return; // sent as train.failed
    }
    if (!live()) return;
    const slots = r.start.metrics ?? [];
    // With the figures in the masked vector the report says only that the site trained.
    this.opts.transport.send(
      'round.train-report',
      slots.length ? { roundId: r.id, steps: u.report.steps } : { roundId: r.id, ...u.report },
    );
    // The coordinator acknowledges a first chunk only when an upload slot frees up: wait for it up
    // to the stage deadline rather than a fixed time.
    const deadline = Date.parse(r.start.deadlines['masked-input'] ?? '');
    const ackTimeoutMs = Number.isFinite(deadline) ? Math.max(60_000, deadline - Date.now()) : 30 * 60_000;
    try {
      const stream = r.client.maskedInput(inbox, { values: u.vector, weight: u.weight });
      const transferId = maskedTransferId(r.id, r.client.selfIndex);
      const total = stream.length * Uint32Array.BYTES_PER_ELEMENT;
      const firstSlot = u.vector.length - slots.length;
      // SCAFFOLD: the control variate fills the second half of what precedes the figures.
      const control = r.start.plan.scaffold ? [firstSlot / 2, firstSlot] : null;
      for (const ch of stream) {
        if (!live()) return;
        const end = ch.offset + ch.data.length;
        // The figures whose slots lie in this chunk (elements [offset, offset + length)), and the
        // control variate when part of it does.
        const inside = [
          ...(control && ch.offset < control[1] && end > control[0] ? ['scaffold_control'] : []),
          ...slots.filter((_, j) => firstSlot + j >= ch.offset && firstSlot + j < end).map((s) => s.name),
        ];
        await this.opts.transport.sendWithAck(
          'secagg.masked-chunk',
          {
            transferId,
            offset: ch.offset * Uint32Array.BYTES_PER_ELEMENT,
            total,
            data: uint32ToChunk(ch.data),
          },
          ackTimeoutMs,
          inside.length ? { inside } : undefined,
        );
      }
      if (!live()) return;
      this.log.info('masked update sent', { round: r.id, bytes: total, weight: u.weight });
      this.enter(r, 'masked-input-sent', { report: u.report });
    } catch (err) {
      if (!live()) return;
      this.log.error('sending the masked update failed; this site drops out of the round', {
        round: r.id,
        error: messageOf(err),
      });
      this.fail(r, messageOf(err));
    }
  }

  private async survivors(m: Message<'secagg.survivors'>): Promise<void> {
    const current = this.round;
    // The survivor list can overtake the acknowledgement of this site's last chunk: it waits for it.
    if (current?.id === m.roundId && current.state === 'sending-masked-input' && current.upload)
      await current.upload;
    const r = this.expect('secagg.survivors', m.roundId);
    if (r) this.step(r, 'consistency-signed', 'secagg.consistency', () => r.client.consistencyCheck(m));
  }

  private async evaluate(m: Message<'round.evaluate'>): Promise<void> {
    const r = this.expect('round.evaluate', m.roundId);
    if (!r) return;
    if (r.start.metrics) {
      // The round's figures went inside the masked vector: a plain report would undo that.
      this.log.warn('refused round.evaluate: this round sends its figures only inside the masked vector', {
        round: r.id,
      });
      return;
    }
    this.enter(r, 'evaluating');
    try {
      const model = once(() => this.model(m.modelHash, m.modelBytes));
      const report = await this.opts.evaluate(m, model, r.start);
      if (report)
        this.opts.transport.send('round.eval-report', {
          ...report,
          roundId: m.roundId,
          modelHash: m.modelHash,
        });
    } catch (err) {
      this.log.error('evaluating the new global model failed', { round: m.roundId, error: messageOf(err) });
    }
    if (this.round === r && r.state === 'evaluating') this.enter(r, 'done');
  }

  private fail(r: Round, reason: string): void {
    if (r.state === 'failed') return;
    this.log.warn('this site left the round', { round: r.id, state: r.state, reason });
    this.enter(r, 'failed', { reason });
  }

  private enter(
    r: Round,
    state: ParticipantState,
    extra: { reason?: string; report?: TrainingResult['report'] } = {},
  ): void {
    r.state = state;
    this.emit({ type: 'state', roundId: r.id, state, ...extra });
  }

  private emit(event: ParticipantEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.log.error('a participant event handler failed', { event: event.type, error: messageOf(err) });
    }
  }
}
