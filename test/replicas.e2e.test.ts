import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresUrl } from '../apps/coordinator/src/db/testing';
import {
  LocalFederation,
  type RoundRecord,
  type SpawnedCoordinator,
  spawnCoordinator,
} from '../apps/demo/src/local-federation';
import { tinyFederation } from './tiny-federation';
import { until } from './until';

/**
 * Two coordinator replicas on one PostgreSQL database and one Redis (the test suite's own), behind a small TCP load
 * balancer that spreads the agents' websockets over both and fails over when one is gone. Three
 * agent processes train; the replica driving the rounds is killed; the other takes over.
 */
const ADMIN = `fsk_${randomBytes(24).toString('hex')}`;
let dir: string;
let drop: () => Promise<void>;
let lb: Server;
const replicas: SpawnedCoordinator[] = [];
let fed: LocalFederation;
let federationId: string;

/** The test suite's own Redis, started by vitest's globalSetup (test/services/global-setup.ts). */
function testRedisUrl(): string {
  const url = process.env.FEDSYNTH_TEST_REDIS;
  if (!url)
    throw new Error('FEDSYNTH_TEST_REDIS is not set: run the tests with `npm test` (vitest.config.mts)');
  return url;
}

async function startReplica(dataDir: string, databaseUrl: string, redisKey: string): Promise<void> {
  const c = await spawnCoordinator(
    [
      'serve',
      '--data-dir',
      dataDir,
      '--port',
      '0',
      '--stage-seconds',
      '30',
      '--train-seconds',
      '120',
      '--retry-seconds',
      '1',
    ],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        REDIS_URL: testRedisUrl(),
        FEDSYNTH_REDIS_KEY: redisKey,
        FEDSYNTH_ADMIN_TOKEN: ADMIN,
      },
      timeoutMs: 60_000,
    },
  );
  replicas.push(c);
}

/**
 * Websocket connections go to the replicas in turn; plain HTTP to the first live one. A connection
 * that cannot reach its replica tries the next, as a load balancer's health check would.
 */
function startBalancer(): Promise<number> {
  let wsTurn = 0;
  lb = createServer((client: Socket) => {
    client.once('data', (first) => {
      const websocket = first.subarray(0, 20).toString('latin1').startsWith('GET /socket.io');
      const order = replicas.filter((r) => r.proc.exitCode === null && r.proc.signalCode === null);
      if (websocket && order.length > 1) order.push(...order.splice(0, wsTurn++ % order.length));
      const tryNext = (i: number) => {
        if (i >= order.length) return void client.destroy();
        const up = createConnection({ host: '127.0.0.1', port: order[i].port });
        up.once('error', () => tryNext(i + 1));
        up.once('connect', () => {
          up.removeAllListeners('error');
          up.write(first);
          client.pipe(up);
          up.pipe(client);
          const end = () => {
            client.destroy();
            up.destroy();
          };
          up.on('error', end);
          up.on('close', end);
          client.on('error', end);
          client.on('close', end);
        });
      };
      tryNext(0);
    });
    client.on('error', () => client.destroy());
  });
  return new Promise((r) => lb.listen(0, '127.0.0.1', () => r((lb.address() as { port: number }).port)));
}

async function connectedSites(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/fedsynth_connected_sites (\d+)/.exec(text)?.[1] ?? -1);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-replicas-'));
  const db = await freshPostgresUrl();
  drop = db.drop;
  const shared = join(dir, 'coordinator'); // checkpoints and the signing identity, shared like an RWX volume
  const key = `fedsynth-test-${randomBytes(4).toString('hex')}`;
  await startReplica(shared, db.url, key);
  await until('the first replica to hold the lease', async () =>
    replicas[0].output().includes('this replica drives the rounds') ? true : undefined,
  );
  await startReplica(shared, db.url, key);
  const lbPort = await startBalancer();
  fed = new LocalFederation({ dir: join(dir, 'work'), agentEnv: { FEDSYNTH_BACKEND: 'wasm' } });
  fed.url = `http://127.0.0.1:${lbPort}`;
  fed.adminToken = ADMIN;
  const f = await fed.createFederation('replicas', tinyFederation({ localSteps: 8 }));
  federationId = f.id;
  await fed.addPhantomSites(federationId, ['site-1', 'site-2', 'site-3'], {
    dataRoot: join(dir, 'data'),
    seed: 70,
  });
  await fed.api('POST', `/api/federations/${federationId}/start`);
}, 300_000);

afterAll(async () => {
  fed?.killAll();
  for (const r of replicas) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
  await new Promise((r) => (lb ? lb.close(r) : r(undefined)));
  await drop?.();
  if (dir && !process.env.FEDSYNTH_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
});

const completed = (rs: RoundRecord[]) =>
  rs.filter((r) => r.stage === 'completed').sort((a, b) => a.number - b.number);

describe('two coordinator replicas (PostgreSQL + Redis adapter)', () => {
  it('drives rounds with agents on both replicas; when the driver dies the other takes over and nothing is lost', async () => {
    // Agents are spread over both replicas; the first replica drives.
    await until('agents on both replicas', async () => {
      const [a, b] = await Promise.all(replicas.map((r) => connectedSites(r.port)));
      return a > 0 && b > 0 && a + b === 3 ? true : undefined;
    });
    expect(replicas[1].output()).not.toContain('this replica drives the rounds');
    await fed.waitForRounds(federationId, 2, { timeoutMs: 180_000, maxFailures: 0 }).catch((err) => {
      throw new Error(
        `${err.message}\nreplica 1:\n${replicas[0].output().slice(-3000)}\nreplica 2:\n${replicas[1].output().slice(-3000)}`,
      );
    });
    const before = completed(await fed.rounds(federationId));
    const metricsBefore = await fed.metrics(federationId);
    for (const r of before) {
      expect(r.participants).toHaveLength(3);
      expect(r.dropouts ?? []).toHaveLength(0);
    }

    replicas[0].proc.kill('SIGKILL');
    await until('the second replica to take the lease', async () =>
      replicas[1].output().includes('this replica drives the rounds') ? true : undefined,
    );
    const after = await fed.waitForRounds(federationId, before.length + 2, {
      timeoutMs: 240_000,
      maxFailures: 3,
    });
    const done = completed(after);
    for (const r of before) expect(done.find((x) => x.id === r.id)).toEqual(r);
    const metrics = await fed.metrics(federationId);
    for (const m of metricsBefore) expect(metrics).toContainEqual(m);
    // Every agent came back through the survivor and takes part again.
    expect(done[done.length - 1].participants).toHaveLength(3);
    expect(await connectedSites(replicas[1].port)).toBe(3);
    // A round cut by the kill is recorded as aborted by the new driver, not lost.
    for (const r of after.filter((x) => x.stage === 'aborted')) expect(r.error).toMatch(/restarted/);
  }, 600_000);
});
