import { randomBytes } from 'node:crypto';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import {
  agentLimits,
  authPayload,
  checkVersion,
  createGatewayParser,
  type LimitedDecoder,
  MAX_CHUNK_BYTES,
  type Message,
  type MessageName,
  PROTOCOL_VERSION,
  ProtocolError,
  parseMessage,
} from '@fedsynth/protocol';
import { SecAggError } from '@fedsynth/secure-agg';
import { type Namespace, Server, type Socket } from 'socket.io';
import { SiteEntity } from '../db/entities';
import { CoordinatorError } from '../errors/coordinator-error';
import type { CoordinatorContext } from '../http/context';
import { log } from '../logging/logger';
import { verifyEd25519 } from '../sites/enrollment-service';
import { type ConnectionCaps, ConnectionGuard } from './connection-guard';

/** Limits on what one site may send. */
export interface GatewayLimits extends ConnectionCaps {
  /** Largest frame socket.io accepts (a chunk plus its envelope); larger ones drop the connection. */
  maxMessageBytes: number;
  /** Messages per second per site (token bucket, burst of the same size). */
  messagesPerSecond: number;
  /** Time from connecting to a completed login; a connection that has not logged in by then is closed. */
  authTimeoutMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxMessageBytes: MAX_CHUNK_BYTES + 64 * 1024,
  messagesPerSecond: 500,
  authTimeoutMs: 5_000,
  unauthenticatedTotal: 256,
  unauthenticatedPerAddress: 32,
};

/** Login refusals that count as a failed authentication of the client's address. */
const FAILED_LOGIN = new Set(['BAD_SIGNATURE', 'UNKNOWN_KEY', 'REVOKED', 'STALE_CHALLENGE', 'AUTH_TIMEOUT']);

/**
 * What an agent is told when handling its message failed: our own refusals keep their code and
 * text; anything else (a database error, a bug) becomes INTERNAL with a fixed text, and the detail
 * goes to the coordinator's log only.
 */
export function agentError(
  err: unknown,
  fields: Record<string, unknown> = {},
): { code: string; message: string } {
  if (err instanceof ProtocolError || err instanceof SecAggError || err instanceof CoordinatorError)
    return { code: err.code, message: err.message };
  log('gateway').error({ ...fields, err }, 'handling an agent message failed');
  return { code: 'INTERNAL', message: 'the coordinator could not handle this message; see its log' };
}

/** How the coordinator talks to one agent: its socket here, or a room that reaches it on another replica. */
export interface AgentLink {
  emit(event: string, payload: unknown): unknown;
  readonly connected: boolean;
  disconnect(close?: boolean): unknown;
}

/** A logged-in agent. */
export interface AgentSession {
  siteId: string;
  siteName: string;
  federationId: string;
  socket: AgentLink;
}

/** What travels between replicas about an agent connected to one of them. */
interface Forwarded {
  siteId: string;
  siteName: string;
  federationId: string;
  event: string;
  payload: unknown;
}

/**
 * Binary fields as Node Buffers before they cross to another replica in a room broadcast: the
 * Redis adapter's msgpack encoder copies other typed arrays element by element (a Uint32Array
 * loses three bytes of each element).
 */
export function asBuffers(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value;
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(asBuffers);
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asBuffers(v)]));
  }
  return value;
}

/**
 * Messages forwarded between replicas travel as JSON (the adapter's server-side emits), so binary
 * fields are carried as { $b64 } and restored on arrival.
 */
export function binaryToJson(value: unknown): unknown {
  if (ArrayBuffer.isView(value))
    return { $b64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(binaryToJson);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, binaryToJson(v)]));
  return value;
}

export function binaryFromJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(binaryFromJson);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.$b64 === 'string' && Object.keys(o).length === 1) return Buffer.from(o.$b64, 'base64');
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, binaryFromJson(v)]));
  }
  return value;
}

const FORWARD = 'fedsynth:agent-message';
const GONE = 'fedsynth:agent-gone';

/**
 * The socket.io namespace `/agents`. Each connection must first prove possession of an enrolled,
 * approved site key by signing a fresh nonce; the protocol version is checked; every message is
 * validated against its schema and rate-limited. A refusal is sent as `protocol.error` with a code
 * and a message naming the problem, then the connection is closed.
 */
export class AgentGateway {
  readonly io: Server;
  readonly ns: Namespace;
  readonly sessions = new Map<string, AgentSession>();
  private readonly handlers = new Map<
    string,
    (session: AgentSession, message: unknown) => void | Promise<void>
  >();
  private readonly disconnectHandlers: ((session: AgentSession) => void)[] = [];
  /**
   * Whether this process drives the rounds. Alone it always does; among replicas (Redis adapter)
   * only the holder of the round lease does, and the others forward their agents' messages to it.
   */
  driving = true;
  private replicated = false;
  /** Sites connected to other replicas, as the driving replica knows them. */
  private readonly remote = new Map<string, AgentSession>();

  /** Registers the handler of a validated message from a logged-in agent (one per event). */
  handle<N extends MessageName>(
    event: N,
    handler: (session: AgentSession, message: Message<N>) => void | Promise<void>,
  ): void {
    this.handlers.set(event, handler as (session: AgentSession, message: unknown) => void);
  }

  /** Called when a logged-in agent's connection ends. */
  onDisconnect(handler: (session: AgentSession) => void): void {
    this.disconnectHandlers.push(handler);
  }

  private readonly refusedHandlers: ((session: AgentSession, event: string) => void)[] = [];

  /** Called when a logged-in agent's message was refused (invalid, out of range, unknown). */
  onRefused(handler: (session: AgentSession, event: string) => void): void {
    this.refusedHandlers.push(handler);
  }

  private readonly limits: GatewayLimits;
  readonly guard: ConnectionGuard;
  /** Per engine connection: takes it off the unauthenticated count. */
  private readonly release = new WeakMap<object, () => void>();

  constructor(
    http: HttpServer,
    private readonly ctx: CoordinatorContext,
    limits: Partial<GatewayLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.guard = new ConnectionGuard(this.limits, ctx.boundary.trustProxy);
    // socket.io makes a connection's decoder and then announces the connection, synchronously: the
    // decoder made last belongs to the next engine connection.
    let decoder: LimitedDecoder | null = null;
    this.io = new Server(http, {
      maxHttpBufferSize: this.limits.maxMessageBytes,
      serveClient: false,
      transports: ['websocket'],
      // Every connection decodes through a LimitedDecoder: before login only the login answer.
      parser: createGatewayParser((d) => {
        decoder = d;
      }),
      // A connection that does not even join the namespace is closed at the login deadline too.
      connectTimeout: this.limits.authTimeoutMs,
      allowRequest: (req, callback) => {
        const why = this.guard.refusal(req);
        callback(why, why === null);
      },
    });
    this.io.engine.on(
      'connection',
      (raw: { request: IncomingMessage; once(e: 'close', f: () => void): void }) => {
        // A connection that sends more than a message may carry is cut at once, unread.
        if (decoder) decoder.onRefused = () => raw.request.socket.destroy();
        decoder = null;
        const release = this.guard.admit(this.guard.address(raw.request));
        this.release.set(raw, release);
        raw.once('close', release);
      },
    );
    this.ns = this.io.of('/agents');
    this.ns.on('connection', (socket) => void this.onConnection(socket));
    // Revocation takes effect at once, on whichever replica the site is connected to.
    ctx.enrollment.onRevoked((siteId) =>
      this.disconnectSite(siteId, 'REVOKED', 'this site was revoked by an admin'),
    );
  }

  /** Tells a site why and closes its connections (here or, among replicas, on any of them). */
  disconnectSite(siteId: string, code: string, message: string): void {
    const room = `site:${siteId}`;
    this.ns.to(room).emit('protocol.error', { code, message });
    this.ns.in(room).disconnectSockets(true);
  }

  /**
   * Joins the replicas that share this Redis: agents on any replica are reachable from the driving
   * one (by room), and agent messages received by the others are forwarded to it.
   */
  async useRedis(url: string, key = 'fedsynth'): Promise<void> {
    const { createClient } = await import('redis');
    const { createAdapter } = await import('@socket.io/redis-adapter');
    const pub = createClient({ url });
    const sub = pub.duplicate();
    pub.on('error', (err) => log('gateway').warn({ err }, 'redis (publisher) failed'));
    sub.on('error', (err) => log('gateway').warn({ err }, 'redis (subscriber) failed'));
    await Promise.all([pub.connect(), sub.connect()]);
    // Forwarded uploads wait for an upload slot on the driving replica: allow them two minutes.
    this.io.adapter(createAdapter(pub, sub, { key, requestsTimeout: 120_000 }));
    this.replicated = true;
    this.driving = false;
    this.redisClients = [pub, sub];
    this.ns.on(FORWARD, (m: Forwarded, reply?: (r: unknown) => void) => void this.onForwarded(m, reply));
    this.ns.on(GONE, (siteId: string) => {
      const s = this.remote.get(siteId);
      if (!this.driving || !s) return;
      this.remote.delete(siteId);
      for (const h of this.disconnectHandlers) h(s);
    });
  }

  private redisClients: { quit(): Promise<unknown> }[] = [];

  /** A session for a site connected to another replica (emits reach it through its room). */
  private remoteSession(m: { siteId: string; siteName: string; federationId: string }): AgentSession {
    let s = this.remote.get(m.siteId);
    if (!s) {
      const room = `site:${m.siteId}`;
      const ns = this.ns;
      const remote = this.remote;
      s = {
        siteId: m.siteId,
        siteName: m.siteName,
        federationId: m.federationId,
        socket: {
          emit: (event: string, payload: unknown) => ns.to(room).emit(event, asBuffers(payload)),
          get connected() {
            return remote.has(m.siteId);
          },
          disconnect: () => ns.in(room).disconnectSockets(true),
        },
      };
      this.remote.set(m.siteId, s);
    }
    return s;
  }

  /** The driving replica handles a message another replica received from its agent. */
  private async onForwarded(m: Forwarded, reply?: (r: unknown) => void): Promise<void> {
    if (!this.driving) return reply?.(null);
    const session = this.sessions.get(m.siteId) ?? this.remoteSession(m);
    try {
      await this.handlers.get(m.event)?.(session, binaryFromJson(m.payload));
      reply?.({ ok: true });
    } catch (err) {
      reply?.({
        ok: false,
        ...agentError(err, { siteId: m.siteId, federationId: m.federationId, event: m.event }),
      });
    }
  }

  /**
   * Every logged-in agent: those connected here, and (among replicas) those connected to the
   * others, found through the adapter.
   */
  async allSessions(): Promise<AgentSession[]> {
    if (!this.replicated) return [...this.sessions.values()];
    const out = new Map<string, AgentSession>();
    for (const remote of await this.ns.fetchSockets()) {
      const d = remote.data as { siteId?: string; siteName?: string; federationId?: string };
      if (!d?.siteId || out.has(d.siteId)) continue;
      out.set(
        d.siteId,
        this.sessions.get(d.siteId) ??
          this.remoteSession({
            siteId: d.siteId,
            siteName: d.siteName ?? '',
            federationId: d.federationId ?? '',
          }),
      );
    }
    for (const id of [...this.remote.keys()]) if (!out.has(id)) this.remote.delete(id);
    return [...out.values()];
  }

  private refuse(socket: Socket, code: string, message: string): void {
    socket.emit('protocol.error', { code, message });
    socket.disconnect(true);
  }

  /** Whether the site's federation asks its sites to send no plain-text counts. */
  private async hidesCounts(federationId: string | null): Promise<boolean> {
    if (!federationId) return false;
    try {
      return this.ctx.federations.configOf(await this.ctx.federations.get(federationId)).privacy.hideCounts;
    } catch {
      return false;
    }
  }

  /**
   * The most sites a round of the federation can have (its plan's maxSites), which bounds a site's
   * share and unmask messages; the schema's largest when its configuration does not parse.
   */
  private async maxSitesOf(federationId: string): Promise<number> {
    const fed = await this.ctx.federations.get(federationId);
    try {
      return this.ctx.federations.configOf(fed).plan.maxSites;
    } catch {
      return 10_000;
    }
  }

  private async onConnection(socket: Socket): Promise<void> {
    const address = this.guard.address(socket.request);
    const logger = log('gateway');
    const refuse = (code: string, message: string) => {
      if (FAILED_LOGIN.has(code)) void this.ctx.failures.fail(address);
      logger.info({ code, address, reason: message }, 'agent login refused');
      this.refuse(socket, code, message);
    };
    const wait = await this.ctx.failures.retryAfterSeconds(address);
    if (wait > 0) {
      logger.info({ code: 'RATE_LIMITED', address, retryAfterSeconds: wait }, 'agent login refused');
      return this.refuse(
        socket,
        'RATE_LIMITED',
        `too many failed logins from this address; retry in ${wait} s`,
      );
    }
    if (socket.disconnected) return;
    const nonce = new Uint8Array(randomBytes(32));
    let answered = false;
    const timer = setTimeout(() => {
      if (!answered) refuse('AUTH_TIMEOUT', `no login within ${this.limits.authTimeoutMs} ms`);
    }, this.limits.authTimeoutMs);
    socket.once('disconnect', () => clearTimeout(timer));
    socket.emit('auth.challenge', {
      protocolVersion: PROTOCOL_VERSION,
      nonce,
      serverTime: new Date().toISOString(),
    });
    socket.once('auth.response', async (raw: unknown) => {
      answered = true;
      clearTimeout(timer);
      try {
        // The version first: an agent of another version may shape its login differently, and must
        // hear that it is outdated rather than that its message is malformed.
        const theirs = (raw as { protocolVersion?: unknown } | null)?.protocolVersion;
        if (typeof theirs === 'number' && Number.isInteger(theirs)) checkVersion(theirs);
        const msg = parseMessage('auth.response', raw);
        checkVersion(msg.protocolVersion);
        if (Buffer.compare(Buffer.from(msg.nonce), Buffer.from(nonce)) !== 0) {
          return refuse(
            'STALE_CHALLENGE',
            'the signed nonce is not the one issued on this connection (replayed or stale challenge)',
          );
        }
        // Strict verification: small-order or non-canonical keys and non-canonical signatures fail.
        if (!verifyEd25519(msg.publicKey, authPayload(nonce, msg.publicKey), msg.signature))
          return refuse('BAD_SIGNATURE', 'the login signature does not verify with the given key');
        const repo = this.ctx.db.dataSource.getRepository(SiteEntity);
        const site = await repo.findOneBy({ publicKey: Buffer.from(msg.publicKey) });
        if (!site)
          return refuse(
            'UNKNOWN_KEY',
            'this key is not enrolled; enroll the site with a one-time token first',
          );
        if (site.status === 'revoked') return refuse('REVOKED', `site "${site.name}" is revoked`);
        if (site.status !== 'approved')
          return refuse('NOT_APPROVED', `site "${site.name}" is enrolled but not yet approved by an admin`);
        if (socket.disconnected) return;
        await repo.update({ id: site.id }, { lastSeenAt: new Date() });
        // Logged in: off the unauthenticated count, and the message limits of its federation.
        this.release.get(socket.conn)?.();
        (socket.client as unknown as { decoder: LimitedDecoder }).decoder.setLimits(
          agentLimits(await this.maxSitesOf(site.federationId)),
        );
        const session: AgentSession = {
          siteId: site.id,
          siteName: site.name,
          federationId: site.federationId,
          socket,
        };
        this.sessions.get(site.id)?.socket.disconnect(true); // one connection per site: the newest wins
        this.sessions.set(site.id, session);
        this.remote.delete(site.id);
        socket.data = { siteId: site.id, siteName: site.name, federationId: site.federationId };
        socket.join(`site:${site.id}`);
        const fields = { siteId: site.id, siteName: site.name, federationId: site.federationId };
        const since = Date.now();
        logger.info({ ...fields, address }, 'agent connected');
        socket.once('disconnect', (reason: string) => {
          logger.info({ ...fields, reason, connectedMs: Date.now() - since }, 'agent disconnected');
          if (this.sessions.get(site.id)?.socket === socket) this.sessions.delete(site.id);
          for (const h of this.disconnectHandlers) h(session);
          if (this.replicated && !this.driving) this.ns.serverSideEmit(GONE, site.id);
        });
        this.attachHandlers(session, socket);
        socket.emit('auth.ok', {
          siteId: site.id,
          siteName: site.name,
          federationId: site.federationId,
          ...((await this.hidesCounts(site.federationId)) ? { hideCounts: true } : {}),
        });
      } catch (err) {
        const e = agentError(err, { address, event: 'auth.response' });
        if (e.code !== 'INTERNAL')
          logger.info({ code: e.code, address, reason: e.message }, 'agent login refused');
        this.refuse(socket, e.code === 'INTERNAL' ? 'INTERNAL' : e.code, e.message);
      }
    });
  }

  private attachHandlers(session: AgentSession, socket: Socket): void {
    let tokens = this.limits.messagesPerSecond;
    let last = Date.now();
    socket.onAny(async (event: string, payload: unknown, ack?: unknown) => {
      // An agent that asks for an acknowledgement (flow control of large uploads) gets one once the
      // message is handled, or with the error that refused it.
      const reply = typeof ack === 'function' ? (ack as (r: unknown) => void) : undefined;
      const now = Date.now();
      tokens = Math.min(
        this.limits.messagesPerSecond,
        tokens + ((now - last) / 1000) * this.limits.messagesPerSecond,
      );
      last = now;
      if (tokens < 1)
        return this.refuse(
          socket,
          'RATE_LIMITED',
          `more than ${this.limits.messagesPerSecond} messages per second`,
        );
      tokens -= 1;
      try {
        if (event === 'agent.hello') {
          const hello = parseMessage('agent.hello', payload);
          await this.ctx.db.dataSource.getRepository(SiteEntity).update(
            { id: session.siteId },
            {
              backend: hello.backend,
              device: hello.device,
              ...(hello.sampleCount !== undefined ? { sampleCount: hello.sampleCount } : {}),
              lastSeenAt: new Date(),
            },
          );
          return;
        }
        if (event === 'auth.response') return;
        const msg = parseMessage(event as MessageName, payload);
        if (this.replicated && !this.driving) {
          // Validated here; the replica that drives the rounds handles it (and answers the ack).
          await this.forward({ ...session, event, payload: msg }, reply);
          return;
        }
        await this.handlers.get(event)?.(session, msg);
        reply?.({ ok: true });
      } catch (err) {
        const who = { siteId: session.siteId, federationId: session.federationId, event };
        const e = agentError(err, who);
        // Invalid messages at info; the refusals of a round's rules (late, out of stage) at debug.
        if (e.code !== 'INTERNAL')
          log('gateway')[err instanceof ProtocolError ? 'info' : 'debug'](
            { ...who, code: e.code, reason: e.message },
            'agent message refused',
          );
        socket.emit('protocol.error', { ...e, ref: event });
        reply?.({ ok: false, ...e });
        if (err instanceof ProtocolError) for (const h of this.refusedHandlers) h(session, event);
      }
    });
  }

  private forward(
    m: Forwarded & { socket?: unknown },
    reply?: (r: { ok: true } | { ok: false; code: string; message: string }) => void,
  ): Promise<void> {
    const { socket: _local, ...rest } = m;
    const message = { ...rest, payload: binaryToJson(rest.payload) };
    if (!reply) {
      this.ns.serverSideEmit(FORWARD, message);
      return Promise.resolve();
    }
    return this.ns.serverSideEmitWithAck(FORWARD, message).then(
      (answers: unknown[]) => {
        const answer = answers.find((a) => a) as { ok: true } | { ok: false; code: string; message: string };
        reply(
          answer ?? {
            ok: false,
            code: 'UNAVAILABLE',
            message: 'no coordinator replica drives rounds right now',
          },
        );
      },
      (err: Error) =>
        reply({
          ok: false,
          code: 'UNAVAILABLE',
          message: `the driving coordinator did not answer (${err.message})`,
        }),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) =>
      this.io.close(() => {
        void Promise.allSettled(this.redisClients.map((c) => c.quit())).then(() => resolve());
      }),
    );
  }
}
