import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import {
  authPayload,
  checkVersion,
  MAX_CHUNK_BYTES,
  type Message,
  type MessageName,
  PROTOCOL_VERSION,
  ProtocolError,
  parseMessage,
  socketParser,
} from '@fedsynth/protocol';
import { type Namespace, Server, type Socket } from 'socket.io';
import { SiteEntity } from '../db/entities';
import type { CoordinatorContext } from '../http/context';
import { verifyEd25519 } from '../sites/enrollment-service';

/** Limits on what one site may send. */
export interface GatewayLimits {
  /** Largest message socket.io accepts (a chunk plus its envelope); larger ones drop the connection. */
  maxMessageBytes: number;
  /** Messages per second per site (token bucket, burst of the same size). */
  messagesPerSecond: number;
  /** Time to answer the login challenge. */
  authTimeoutMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxMessageBytes: MAX_CHUNK_BYTES + 64 * 1024,
  messagesPerSecond: 500,
  authTimeoutMs: 10_000,
};

/** A logged-in agent. */
export interface AgentSession {
  siteId: string;
  siteName: string;
  federationId: string;
  socket: Socket;
}

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

  constructor(
    http: HttpServer,
    private readonly ctx: CoordinatorContext,
    private readonly limits: GatewayLimits = DEFAULT_LIMITS,
  ) {
    this.io = new Server(http, {
      maxHttpBufferSize: limits.maxMessageBytes,
      serveClient: false,
      transports: ['websocket'],
      parser: socketParser,
    });
    this.ns = this.io.of('/agents');
    this.ns.on('connection', (socket) => this.onConnection(socket));
  }

  private refuse(socket: Socket, code: string, message: string): void {
    socket.emit('protocol.error', { code, message });
    socket.disconnect(true);
  }

  private onConnection(socket: Socket): void {
    const nonce = new Uint8Array(randomBytes(32));
    let answered = false;
    const timer = setTimeout(() => {
      if (!answered) this.refuse(socket, 'AUTH_TIMEOUT', `no login within ${this.limits.authTimeoutMs} ms`);
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
        const msg = parseMessage('auth.response', raw);
        checkVersion(msg.protocolVersion);
        if (Buffer.compare(Buffer.from(msg.nonce), Buffer.from(nonce)) !== 0) {
          return this.refuse(
            socket,
            'STALE_CHALLENGE',
            'the signed nonce is not the one issued on this connection (replayed or stale challenge)',
          );
        }
        if (!verifyEd25519(msg.publicKey, authPayload(nonce, msg.publicKey), msg.signature)) {
          return this.refuse(
            socket,
            'BAD_SIGNATURE',
            'the login signature does not verify with the given key',
          );
        }
        const repo = this.ctx.db.dataSource.getRepository(SiteEntity);
        const site = await repo.findOneBy({ publicKey: Buffer.from(msg.publicKey) });
        if (!site)
          return this.refuse(
            socket,
            'UNKNOWN_KEY',
            'this key is not enrolled; enroll the site with a one-time token first',
          );
        if (site.status === 'revoked')
          return this.refuse(socket, 'REVOKED', `site "${site.name}" is revoked`);
        if (site.status !== 'approved')
          return this.refuse(
            socket,
            'NOT_APPROVED',
            `site "${site.name}" is enrolled but not yet approved by an admin`,
          );
        await repo.update({ id: site.id }, { lastSeenAt: new Date() });
        const session: AgentSession = {
          siteId: site.id,
          siteName: site.name,
          federationId: site.federationId,
          socket,
        };
        this.sessions.get(site.id)?.socket.disconnect(true); // one connection per site: the newest wins
        this.sessions.set(site.id, session);
        socket.once('disconnect', () => {
          if (this.sessions.get(site.id)?.socket === socket) this.sessions.delete(site.id);
          for (const h of this.disconnectHandlers) h(session);
        });
        this.attachHandlers(session);
        socket.emit('auth.ok', { siteId: site.id, siteName: site.name, federationId: site.federationId });
      } catch (err) {
        if (err instanceof ProtocolError) return this.refuse(socket, err.code, err.message);
        this.refuse(socket, 'INTERNAL', 'login failed on the coordinator; see its log');
        console.error(err);
      }
    });
  }

  private attachHandlers(session: AgentSession): void {
    const { socket } = session;
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
              sampleCount: hello.sampleCount,
              lastSeenAt: new Date(),
            },
          );
          return;
        }
        if (event === 'auth.response') return;
        const msg = parseMessage(event as MessageName, payload);
        await this.handlers.get(event)?.(session, msg);
        reply?.({ ok: true });
      } catch (err) {
        const e = err as ProtocolError;
        socket.emit('protocol.error', { code: e.code ?? 'INVALID_MESSAGE', message: e.message, ref: event });
        reply?.({ ok: false, code: e.code ?? 'INVALID_MESSAGE', message: e.message });
      }
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.io.close(() => resolve()));
  }
}
