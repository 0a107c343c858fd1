import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authPayload, PROTOCOL_VERSION, roundStartPayload, socketParser } from '@fedsynth/protocol';
import { type RoundConfig, sessionId } from '@fedsynth/secure-agg';
import { Server } from 'socket.io';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../audit/audit-log';
import { loadAgentConfig } from '../config/agent-config';
import { generateIdentityKey } from '../identity/identity-key';
import { createLogger } from './logger';
import { SiteAgent } from './site-agent';

/**
 * The agent against a plain socket.io server standing in for the coordinator (an outside library,
 * not our coordinator): login, then round starts the site must decline. No training runs here.
 */
const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const impostor = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
const site = generateIdentityKey(new Uint8Array(32).fill(9));
const stateDir = mkdtempSync(join(tmpdir(), 'fedsynth-agent-'));
const received: { event: string; payload: Record<string, unknown> }[] = [];
let io: Server;
let url: string;
let agent: SiteAgent;
let sendStart: (signer: Uint8Array, n: number) => void;

function writeConfig(extra: Record<string, unknown>): void {
  writeFileSync(
    join(stateDir, 'agent.json'),
    JSON.stringify({ siteName: 'h1', dataDir: join(stateDir, 'data'), coordinatorUrl: url, ...extra }),
  );
}

function hhmm(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

async function reply(n: number): Promise<Record<string, unknown>> {
  const end = Date.now() + 10_000;
  for (;;) {
    const r = received.find((x) => x.event === 'round.reply' && x.payload.roundId === `r${n}`);
    if (r) return r.payload;
    if (Date.now() > end) throw new Error(`no reply to round r${n}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

beforeAll(async () => {
  const http = createServer();
  io = new Server(http, { transports: ['websocket'], parser: socketParser });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  const loggedIn = new Promise<void>((resolve) => {
    io.of('/agents').on('connection', (socket) => {
      const nonce = new Uint8Array(32).fill(1);
      socket.onAny((event, payload) => received.push({ event, payload }));
      socket.emit('auth.challenge', {
        protocolVersion: PROTOCOL_VERSION,
        nonce,
        serverTime: new Date().toISOString(),
      });
      socket.on('auth.response', (m: { publicKey: Uint8Array; signature: Uint8Array }) => {
        expect(nacl.sign.detached.verify(authPayload(nonce, m.publicKey), m.signature, m.publicKey)).toBe(
          true,
        );
        socket.emit('auth.ok', { siteId: 's1', siteName: 'h1', federationId: 'f1' });
        resolve();
      });
      sendStart = (signer, n) => {
        const others = [1, 2].map(
          (i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(20 + i)).publicKey,
        );
        const secAgg: RoundConfig = {
          roundId: `r${n}`,
          modelHash: 'a'.repeat(64),
          participants: [site.publicKey, ...others].map((k, i) => ({
            index: i + 1,
            siteId: `s${i + 1}`,
            identityKey: k,
          })),
          threshold: 2,
          graph: { kind: 'complete' },
          vectorLength: 10,
          quantization: { clip: 0.1, levels: 65536, maxWeight: 1000 },
        };
        const start = {
          federationId: 'f1',
          roundNumber: n,
          task: { source: 'mr', target: 'ct' },
          secAgg,
          modelBytes: 100,
          plan: {
            localSteps: 5,
            batchSize: 2,
            lr: 1e-3,
            size: 16,
            prediction: 'sample',
            schedule: 'cosine',
            fedProxMu: 0,
            dp: { clip: 1, noiseMultiplier: 0, delta: 1e-5 },
          },
          deadlines: {},
        };
        socket.emit('round.start', {
          ...start,
          signature: nacl.sign.detached(roundStartPayload(sessionId(secAgg), start), signer),
        });
      };
    });
  });
  writeConfig({});
  const config = loadAgentConfig({ stateDir, env: {}, requireFile: true });
  agent = new SiteAgent({
    config,
    identity: site,
    enrollment: {
      coordinatorUrl: url,
      siteId: 's1',
      siteName: 'h1',
      federationId: 'f1',
      status: 'approved',
      coordinatorKey: Buffer.from(coordinator.publicKey).toString('base64'),
      enrolledAt: new Date().toISOString(),
    },
    log: createLogger('json', { write: () => true } as never),
    backend: { backend: 'wasm', device: 'test' },
  });
  void agent.run();
  await loggedIn;
});

afterAll(async () => {
  await agent?.stop();
  io?.close();
});

describe('site agent controls', () => {
  it('declines a round start that is not signed by the pinned coordinator key', async () => {
    sendStart(impostor.secretKey, 1);
    const r = await reply(1);
    expect(r.accept).toBe(false);
    expect(r.reason).toMatch(/not signed by the coordinator key pinned at enrollment/);
    expect(received.some((x) => x.event === 'secagg.advertise')).toBe(false);
  });

  it('declines outside its training window, and while paused or opted out', async () => {
    const now = new Date();
    writeConfig({
      trainingWindow: `${hhmm(new Date(now.getTime() + 2 * 3600_000))}-${hhmm(new Date(now.getTime() + 3 * 3600_000))}`,
    });
    sendStart(coordinator.secretKey, 2);
    expect((await reply(2)).reason).toMatch(/outside the site's training window/);
    writeConfig({ paused: true });
    sendStart(coordinator.secretKey, 3);
    expect((await reply(3)).reason).toMatch(/paused/);
    writeConfig({ optOut: true });
    sendStart(coordinator.secretKey, 4);
    expect((await reply(4)).reason).toMatch(/opted out/);
    expect(received.some((x) => x.event === 'secagg.advertise')).toBe(false);
  });

  it('joins a properly signed round inside its window: accepts, advertises keys, asks for the model', async () => {
    writeConfig({});
    sendStart(coordinator.secretKey, 5);
    expect((await reply(5)).accept).toBe(true);
    const until = Date.now() + 5000;
    while (!received.some((x) => x.event === 'blob.request') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    const adv = received.find((x) => x.event === 'secagg.advertise')!;
    expect(adv.payload.roundId).toBe('r5');
    expect(adv.payload.sender).toBe(1);
    expect(received.find((x) => x.event === 'blob.request')!.payload.sha256).toBe('a'.repeat(64));
  });

  it('logged every message the server received, in order, before sending it', () => {
    const audit = AuditLog.read(join(stateDir, 'audit.jsonl')).filter((a) => !a.type.startsWith('socket.'));
    expect(audit.map((a) => a.type)).toEqual(received.map((r) => r.event));
    expect(audit.filter((a) => a.type === 'round.reply').map((a) => a.round)).toEqual([
      'r1',
      'r2',
      'r3',
      'r4',
      'r5',
    ]);
  });
});
