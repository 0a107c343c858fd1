import { authPayload, PROTOCOL_VERSION } from '@fedsynth/protocol';
import type { INestApplication } from '@nestjs/common';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../db/database';
import { FederationEntity, SiteEntity } from '../db/entities';
import { freshEmbedded } from '../db/testing';
import { createHttpApp } from '../http/app';
import { CoordinatorContext } from '../http/context';
import { AgentGateway } from './agent-gateway';

let db: Database;
let app: INestApplication;
let gateway: AgentGateway;
let url: string;
const keys = {
  approved: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1)),
  pending: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2)),
  revoked: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3)),
  unknown: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(4)),
};

beforeAll(async () => {
  db = await freshEmbedded();
  const ctx = new CoordinatorContext(db, 'test');
  const fed = await db.dataSource
    .getRepository(FederationEntity)
    .save(await ctx.federations.create({ name: 'gw' }));
  const sites = db.dataSource.getRepository(SiteEntity);
  for (const [name, status] of [
    ['approved', 'approved'],
    ['pending', 'pending'],
    ['revoked', 'revoked'],
  ] as const) {
    await sites.save({ federationId: fed.id, name, publicKey: Buffer.from(keys[name].publicKey), status });
  }
  app = await createHttpApp(ctx);
  gateway = new AgentGateway(app.getHttpServer(), ctx, {
    maxMessageBytes: 64 * 1024,
    messagesPerSecond: 50,
    authTimeoutMs: 2000,
  });
  await app.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/agents`;
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  await app?.close();
  await db?.close();
});

type Outcome = {
  ok?: Record<string, unknown>;
  error?: { code: string; message: string };
  disconnected: boolean;
  socket: Socket;
};

/** Connects and answers the challenge with `respond`; resolves with what the coordinator said. */
function login(respond: (nonce: Uint8Array) => unknown): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false });
    const out: Outcome = { disconnected: false, socket };
    socket.on('auth.challenge', (c: { nonce: Uint8Array }) =>
      socket.emit('auth.response', respond(new Uint8Array(c.nonce))),
    );
    socket.on('auth.ok', (m) => {
      out.ok = m;
      resolve(out);
    });
    socket.on('protocol.error', (e) => {
      out.error = e;
    });
    socket.on('disconnect', () => {
      out.disconnected = true;
      resolve(out);
    });
  });
}

const signed =
  (kp: nacl.SignKeyPair, version = PROTOCOL_VERSION) =>
  (nonce: Uint8Array) => ({
    protocolVersion: version,
    publicKey: kp.publicKey,
    nonce,
    signature: nacl.sign.detached(authPayload(nonce, kp.publicKey), kp.secretKey),
    agentVersion: '0.1.0',
  });

describe('agent gateway', () => {
  it('logs in an approved site, records it, and takes its hello', async () => {
    const r = await login(signed(keys.approved));
    expect(r.ok).toMatchObject({ siteName: 'approved' });
    r.socket.emit('agent.hello', { backend: 'wasm', device: 'CPU', sampleCount: 120, accepting: true });
    await new Promise((res) => setTimeout(res, 200));
    const site = await db.dataSource.getRepository(SiteEntity).findOneByOrFail({ name: 'approved' });
    expect(site.lastSeenAt).not.toBeNull();
    expect(site.sampleCount).toBe(120);
    expect(site.backend).toBe('wasm');
    // A malformed message is answered with an error naming the field, and the session goes on.
    const err = new Promise<{ code: string; message: string }>((res) => r.socket.once('protocol.error', res));
    r.socket.emit('round.reply', { roundId: '', accept: 'yes' });
    expect((await err).message).toMatch(/round\.reply: roundId.*accept/);
    expect(r.socket.connected).toBe(true);
    r.socket.disconnect();
  });

  it('refuses unknown, pending and revoked keys, bad signatures, replayed challenges, wrong versions and malformed logins', async () => {
    const cases: [string, (n: Uint8Array) => unknown, RegExp][] = [
      ['UNKNOWN_KEY', signed(keys.unknown), /not enrolled/],
      ['NOT_APPROVED', signed(keys.pending), /not yet approved/],
      ['REVOKED', signed(keys.revoked), /revoked/],
      [
        'BAD_SIGNATURE',
        (n) => ({ ...(signed(keys.approved)(n) as object), signature: new Uint8Array(64) }),
        /does not verify/,
      ],
      ['WRONG_VERSION', signed(keys.approved, PROTOCOL_VERSION + 1), /upgrade the coordinator/],
      // An outdated agent whose login has another shape still hears how to upgrade.
      [
        'WRONG_VERSION',
        () => ({ protocolVersion: PROTOCOL_VERSION - 1, publicKey: 'abc' }),
        /speaks protocol version \d+; the coordinator speaks version \d+: upgrade the agent \(npm install -g fedsynth-site-agent@latest/,
      ],
      [
        'INVALID_MESSAGE',
        () => ({ protocolVersion: PROTOCOL_VERSION, publicKey: 'abc' }),
        /auth\.response: publicKey/,
      ],
    ];
    for (const [code, respond, message] of cases) {
      const r = await login(respond);
      expect(r.ok, code).toBeUndefined();
      expect(r.error?.code).toBe(code);
      expect(r.error?.message).toMatch(message);
      expect(r.disconnected).toBe(true);
    }
    // Replay: a signature over a nonce from an earlier connection.
    let old: Uint8Array | undefined;
    const first = await login((n) => {
      old = n;
      return signed(keys.approved)(n);
    });
    first.socket.disconnect();
    const replay = await login(() => signed(keys.approved)(old!));
    expect(replay.error?.code).toBe('STALE_CHALLENGE');
    const sites = await db.dataSource.getRepository(SiteEntity).find();
    expect(sites.filter((s) => s.lastSeenAt !== null).map((s) => s.name)).toEqual(['approved']);
  });

  it('drops a connection that sends an oversized message', async () => {
    const r = await login(signed(keys.approved));
    const closed = new Promise<string>((res) => r.socket.once('disconnect', (reason) => res(reason)));
    r.socket.emit('secagg.masked-chunk', {
      transferId: 't',
      offset: 0,
      total: 1,
      data: new Uint8Array(200 * 1024),
    });
    expect(await closed).toMatch(/transport close/);
  });
});
