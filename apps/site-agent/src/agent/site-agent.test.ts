import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authPayload, PROTOCOL_VERSION, roundStartPayload, socketParser } from '@fedsynth/protocol';
import { type RoundConfig, sessionId } from '@fedsynth/secure-agg';
import { Server, type Socket } from 'socket.io';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../audit/audit-log';
import { type AgentConfig, type AgentConfigSources, loadAgentConfig } from '../config/agent-config';
import { generateIdentityKey, type IdentityKey } from '../identity/identity-key';
import { createLogger } from './logger';
import { SiteAgent } from './site-agent';

/**
 * Agents against a plain socket.io server standing in for the coordinator (an outside library,
 * not our coordinator): login, then round starts the sites must decline or join. No training runs
 * here.
 */
const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const impostor = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
const others = [1, 2].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(20 + i)).publicKey);
let io: Server;
let url: string;
/** Connections by the site key they logged in with. */
const connections = new Map<
  string,
  { socket: Socket; received: { event: string; payload: Record<string, unknown> }[] }
>();
const waiting = new Map<string, () => void>();
const agents: SiteAgent[] = [];

function hhmm(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
/** A training window that is closed now (it opens in two hours). */
function closedWindow(): string {
  const now = Date.now();
  return `${hhmm(new Date(now + 2 * 3600_000))}-${hhmm(new Date(now + 3 * 3600_000))}`;
}

beforeAll(async () => {
  const http = createServer();
  io = new Server(http, { transports: ['websocket'], parser: socketParser });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  io.of('/agents').on('connection', (socket) => {
    const nonce = new Uint8Array(32).fill(1);
    const received: { event: string; payload: Record<string, unknown> }[] = [];
    socket.onAny((event, payload) => received.push({ event, payload }));
    socket.emit('auth.challenge', {
      protocolVersion: PROTOCOL_VERSION,
      nonce,
      serverTime: new Date().toISOString(),
    });
    socket.on('auth.response', (m: { publicKey: Uint8Array; signature: Uint8Array }) => {
      expect(nacl.sign.detached.verify(authPayload(nonce, m.publicKey), m.signature, m.publicKey)).toBe(true);
      const key = Buffer.from(m.publicKey).toString('hex');
      connections.set(key, { socket, received });
      socket.emit('auth.ok', { siteId: key.slice(0, 8), siteName: 'h', federationId: 'f1' });
      waiting.get(key)?.();
    });
  });
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  io?.close();
});

/** A site agent started from agent.json (`file`), an environment and flags, logged in to the stand-in. */
class TestSite {
  readonly stateDir = mkdtempSync(join(tmpdir(), 'fedsynth-agent-'));
  readonly identity: IdentityKey;
  agent!: SiteAgent;

  constructor(
    seed: number,
    readonly prefix: string,
  ) {
    this.identity = generateIdentityKey(new Uint8Array(32).fill(seed));
  }

  writeConfig(extra: Record<string, unknown>): void {
    writeFileSync(
      join(this.stateDir, 'agent.json'),
      JSON.stringify({ siteName: 'h1', dataDir: join(this.stateDir, 'data'), coordinatorUrl: url, ...extra }),
    );
  }

  async start(
    sources: { file?: Record<string, unknown> } & Pick<AgentConfigSources, 'env' | 'flags'> = {},
  ): Promise<this> {
    this.writeConfig(sources.file ?? {});
    const configSources: AgentConfigSources = {
      stateDir: this.stateDir,
      env: sources.env ?? {},
      flags: sources.flags ?? {},
      requireFile: true,
    };
    const config: AgentConfig = loadAgentConfig(configSources);
    this.agent = new SiteAgent({
      config,
      configSources,
      identity: this.identity,
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
    agents.push(this.agent);
    const key = Buffer.from(this.identity.publicKey).toString('hex');
    const loggedIn = new Promise<void>((r) => waiting.set(key, r));
    void this.agent.run();
    await loggedIn;
    return this;
  }

  get received() {
    return connections.get(Buffer.from(this.identity.publicKey).toString('hex'))!.received;
  }

  /** Sends round start number `n`, signed by `signer`. */
  sendStart(n: number, signer: Uint8Array = coordinator.secretKey): void {
    const secAgg: RoundConfig = {
      roundId: `${this.prefix}${n}`,
      modelHash: 'a'.repeat(64),
      participants: [this.identity.publicKey, ...others].map((k, i) => ({
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
      task: { sources: ['mr'], target: 'ct', context: 0 },
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
    connections.get(Buffer.from(this.identity.publicKey).toString('hex'))!.socket.emit('round.start', {
      ...start,
      signature: nacl.sign.detached(roundStartPayload(sessionId(secAgg), start), signer),
    });
  }

  async reply(n: number): Promise<Record<string, unknown>> {
    const end = Date.now() + 10_000;
    for (;;) {
      const r = this.received.find(
        (x) => x.event === 'round.reply' && x.payload.roundId === `${this.prefix}${n}`,
      );
      if (r) return r.payload;
      if (Date.now() > end) throw new Error(`no reply to round ${this.prefix}${n}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** Sends round start `n` and returns the reason the site declined it, or null when it joined. */
  async declines(n: number): Promise<string | null> {
    this.sendStart(n);
    const r = await this.reply(n);
    return r.accept ? null : (r.reason as string);
  }
}

describe('site agent controls', () => {
  let site: TestSite;
  beforeAll(async () => {
    site = await new TestSite(9, 'r').start();
  });

  it('declines a round start that is not signed by the pinned coordinator key', async () => {
    site.sendStart(1, impostor.secretKey);
    const r = await site.reply(1);
    expect(r.accept).toBe(false);
    expect(r.reason).toMatch(/not signed by the coordinator key pinned at enrollment/);
    expect(site.received.some((x) => x.event === 'secagg.advertise')).toBe(false);
  });

  it('declines outside its training window, and while paused or opted out (agent.json, changed while it runs)', async () => {
    site.writeConfig({ trainingWindow: closedWindow() });
    expect(await site.declines(2)).toMatch(/outside the site's training window/);
    site.writeConfig({ paused: true });
    expect(await site.declines(3)).toMatch(/paused/);
    site.writeConfig({ optOut: true });
    expect(await site.declines(4)).toMatch(/opted out/);
    expect(site.received.some((x) => x.event === 'secagg.advertise')).toBe(false);
  });

  it('joins a properly signed round inside its window: accepts, advertises keys, asks for the model', async () => {
    site.writeConfig({});
    expect(await site.declines(5)).toBeNull();
    const until = Date.now() + 5000;
    while (!site.received.some((x) => x.event === 'blob.request') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    const adv = site.received.find((x) => x.event === 'secagg.advertise')!;
    expect(adv.payload.roundId).toBe('r5');
    expect(adv.payload.sender).toBe(1);
    expect(site.received.find((x) => x.event === 'blob.request')!.payload.sha256).toBe('a'.repeat(64));
  });

  it('logged every message the server received, in order, before sending it', () => {
    const audit = AuditLog.read(join(site.stateDir, 'audit.jsonl')).filter(
      (a) => !a.type.startsWith('socket.'),
    );
    expect(audit.map((a) => a.type)).toEqual(site.received.map((r) => r.event));
    expect(audit.filter((a) => a.type === 'round.reply').map((a) => a.round)).toEqual([
      'r1',
      'r2',
      'r3',
      'r4',
      'r5',
    ]);
  });
});

describe('site agent controls from the environment and flags, at every round start', () => {
  it('declines every round when opted out by the environment or a flag', async () => {
    const byEnv = await new TestSite(30, 'env-opt').start({ env: { FEDSYNTH_AGENT_OPT_OUT: 'true' } });
    const byFlag = await new TestSite(31, 'flag-opt').start({ flags: { optOut: true } });
    for (const s of [byEnv, byFlag]) {
      expect(await s.declines(1)).toBe('the site has opted out of training');
      s.writeConfig({ paused: false }); // the file changes; the environment and flags still hold
      expect(await s.declines(2)).toBe('the site has opted out of training');
    }
  });

  it('declines outside a training window given by the environment or a flag', async () => {
    const window = closedWindow();
    const byEnv = await new TestSite(32, 'env-win').start({
      env: { FEDSYNTH_AGENT_TRAINING_WINDOW: window },
    });
    const byFlag = await new TestSite(33, 'flag-win').start({ flags: { trainingWindow: window } });
    for (const s of [byEnv, byFlag]) {
      expect(await s.declines(1)).toBe(`outside the site's training window (${window})`);
      expect(await s.declines(2)).toBe(`outside the site's training window (${window})`);
    }
  });

  it('a flag beats the environment, which beats agent.json, at every re-read', async () => {
    const window = closedWindow();
    const envOverFile = await new TestSite(34, 'env-file').start({
      file: { optOut: true },
      env: { FEDSYNTH_AGENT_OPT_OUT: 'false' },
    });
    expect(await envOverFile.declines(1)).toBeNull();
    envOverFile.writeConfig({ optOut: true, paused: true }); // paused is not set by the environment
    expect(await envOverFile.declines(2)).toBe('the site has paused training');

    const flagOverEnv = await new TestSite(35, 'flag-env').start({
      env: { FEDSYNTH_AGENT_TRAINING_WINDOW: window, FEDSYNTH_AGENT_OPT_OUT: 'true' },
      flags: { trainingWindow: 'always', optOut: false },
    });
    expect(await flagOverEnv.declines(1)).toBeNull();
    flagOverEnv.writeConfig({ trainingWindow: window, optOut: true });
    expect(await flagOverEnv.declines(2)).toBeNull();
  });
});
