import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, flattenCanonical } from '@fedsynth/diffusion/weights';
import { Client } from 'pg';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../apps/coordinator/src/testing/protocol-agent';
import { http, type Target, TINY_PARAMS } from './adversarial/harness';
import { deltaFor, federationWithSites, roundsOf } from './adversarial/sites';
import { startTestCoordinator } from './tiny-federation';
import { until } from './until';

/**
 * Server strategies that carry their optimizer state, checked against numpy, while three
 * federations train side by side on one coordinator that is restarted between rounds 2 and 3;
 * a fourth federation whose stored configuration breaks is paused with its reason and the others
 * go on.
 */
const ROUNDS = 5;
const STRATEGIES = [
  { kind: 'fedadam', lr: 0.02, beta1: 0.8, beta2: 0.95, tau: 1e-3 },
  { kind: 'fedyogi', lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
  { kind: 'fedavgm', lr: 0.7, momentum: 0.6 },
  { kind: 'scaffold', lr: 0.8 },
] as const;
const WEIGHTS = [10, 30, 60];

// Independent oracle: the update rules in numpy, state carried over all rounds.
const ORACLE = `
import json, sys, numpy as np
w = np.array(json.load(open(sys.argv[1])), dtype=np.float64)
d = np.array(json.load(open(sys.argv[2])), dtype=np.float64)
s = json.loads(sys.argv[3]); n = int(sys.argv[4])
m = np.zeros_like(w); v = np.full_like(w, s.get('tau', 0) ** 2); mom = np.zeros_like(w)
for _ in range(n):
    if s['kind'] == 'scaffold':
        w = w + s['lr'] * d; continue
    if s['kind'] == 'fedavgm':
        mom = s['momentum'] * mom + d; w = w + s['lr'] * mom; continue
    m = s['beta1'] * m + (1 - s['beta1']) * d
    if s['kind'] == 'fedadam': v = s['beta2'] * v + (1 - s['beta2']) * d * d
    else: v = v - (1 - s['beta2']) * d * d * np.sign(v - d * d)
    w = w + s['lr'] * m / (np.sqrt(v) + s['tau'])
print(json.dumps(w.tolist()))
`;

let dir: string;
let target: Target;
let drop: () => Promise<void>;
let agents: Socket[] = [];
const feds: { id: string; sites: Awaited<ReturnType<typeof federationWithSites>>['sites'] }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-strategies-'));
  const started = await startTestCoordinator(dir, { stageSeconds: 20, trainSeconds: 60 });
  drop = started.drop;
  const fed = started.fed;
  target = {
    fed,
    url: fed.url,
    port: Number(new URL(fed.url).port),
    pid: fed.coordinator!.pid!,
    admin: fed.adminToken,
    close: async () => undefined,
  };
}, 120_000);

afterAll(async () => {
  for (const a of agents) a.disconnect();
  target?.fed.killAll();
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

/** SCAFFOLD: each site's control variate as sent (times the plan's local steps x lr = 10 x 0.001). */
const CONTROL_SCALE = 0.01;
const controlFor = (length: number, k: number) =>
  Float32Array.from({ length }, (_, i) => 0.004 * Math.cos(i * 0.23 + k));
/** The global control variates the SCAFFOLD federation's sites were offered, by round. */
const controlsOffered: { round: number; bytes: Uint8Array | null }[] = [];

const connectAll = async () => {
  agents = await Promise.all(
    feds.flatMap((f, j) =>
      f.sites.map((s, k) =>
        startAgent(
          `${target.url}/agents`,
          s.kp,
          deltaFor(TINY_PARAMS, 10 * j + k),
          WEIGHTS[k],
          STRATEGIES[j].kind === 'scaffold'
            ? {
                control: controlFor(TINY_PARAMS, k),
                onControl: (round, bytes) => controlsOffered.push({ round, bytes }),
              }
            : {},
        ),
      ),
    ),
  );
};

describe('strategies carry their state; federations train side by side', () => {
  it('five rounds of FedAdam, FedYogi, FedAvgM and SCAFFOLD equal numpy with a coordinator restart between rounds 2 and 3', async () => {
    for (const strategy of STRATEGIES) {
      const f = await federationWithSites(target, `strategy-${strategy.kind}`, 3, {
        plan: { rounds: ROUNDS, minSites: 3, localSteps: 10, lr: 0.001 },
        strategy,
        // Weights 10/30/60 of at most 100 and deltas within 0.01: the mean is exact to about 1e-6.
        secagg: { clip: 0.01, maxWeight: 100 },
      });
      feds.push({ id: f.federationId, sites: f.sites });
    }
    // Another federation, running, whose stored configuration no longer parses when it is loaded
    // (a setting an earlier version accepted), set behind the coordinator's back.
    const broken = await federationWithSites(target, 'broken', 3);
    const pg = new Client({ connectionString: target.fed.opts.databaseUrl });
    await pg.connect();
    await pg.query(
      `UPDATE federations SET status = 'running', config = jsonb_set(config, '{plan,locaSteps}', '5') WHERE id = $1`,
      [broken.federationId],
    );
    await pg.end();
    // Initial models: the coordinator initializes them when the federations start.
    for (const f of feds) await http(target, 'POST', `/api/federations/${f.id}/start`);
    const initial = await until(
      'initial models',
      async () => {
        const all = await Promise.all(
          feds.map(
            async (f) =>
              (await http(target, 'GET', `/api/federations/${f.id}`)).json.currentCheckpoint as string | null,
          ),
        );
        return all.every(Boolean) ? (all as string[]) : undefined;
      },
      60_000,
    );
    const weightsOf = async (sha: string) =>
      flattenCanonical(
        decodeSafetensors(
          new Uint8Array(
            await (
              await fetch(`${target.url}/api/checkpoints/${sha}`, {
                headers: { authorization: `Bearer ${target.admin}` },
              })
            ).arrayBuffer(),
          ),
        ).arrays,
      );
    const w0 = await Promise.all(initial.map(weightsOf));
    const params = w0[0].length;
    expect(params).toBe(TINY_PARAMS);
    await connectAll();
    const completed = (id: string) => async () => {
      const rs = await roundsOf(target, id);
      if (rs.some((r) => r.stage === 'failed'))
        throw new Error(JSON.stringify(rs.map((r) => [r.number, r.stage, r.error])));
      return rs.filter((r) => r.stage === 'completed');
    };
    await until(
      'two completed rounds in every federation',
      async () => {
        const done = await Promise.all(feds.map((f) => completed(f.id)()));
        return done.every((d) => d.length >= 2) ? true : undefined;
      },
      240_000,
    );
    // Restart: stop (the round in progress is aborted) and start again on the same data. The
    // coordinator stops first: agents gone first would fail the round in progress (too few sites)
    // before the stop could abort it, which on a busy machine it sometimes did.
    await target.fed.stopCoordinator('SIGTERM');
    for (const a of agents) a.disconnect();
    await target.fed.startCoordinator();
    await connectAll();
    const finals = await until(
      `${ROUNDS} completed rounds in every federation`,
      async () => {
        const done = await Promise.all(feds.map((f) => completed(f.id)()));
        return done.every((d) => d.length >= ROUNDS) ? done : undefined;
      },
      300_000,
    );
    for (const a of agents) a.disconnect();
    // The round budget stopped each federation by itself.
    for (const f of feds) {
      const info = (await http(target, 'GET', `/api/federations/${f.id}`)).json;
      expect(info.status).toBe('stopped');
      expect(info.statusReason).toBe(`completed the ${ROUNDS} rounds of its plan`);
    }
    // The broken one was paused with its reason, never ran a round, and did not hold the others up.
    const b = (await http(target, 'GET', `/api/federations/${broken.federationId}`)).json;
    expect(b.status).toBe('paused');
    expect(b.statusReason).toMatch(/its configuration is invalid: plan\.locaSteps: unknown key/);
    expect(await roundsOf(target, broken.federationId)).toEqual([]);
    // Federations trained side by side: some rounds of different federations overlapped in time.
    const spans = await Promise.all(
      feds.map(async (f) =>
        (await roundsOf(target, f.id)).map((r) => r as unknown as { startedAt: string; finishedAt: string }),
      ),
    );
    const overlap = spans[0].some((a) =>
      spans[1].some(
        (c) =>
          Date.parse(a.startedAt) < Date.parse(c.finishedAt) &&
          Date.parse(c.startedAt) < Date.parse(a.finishedAt),
      ),
    );
    expect(overlap).toBe(true);
    // Each federation's final model equals numpy's five steps with the state carried.
    const mean = Float64Array.from({ length: params }, () => 0);
    for (const [j, strategy] of STRATEGIES.entries()) {
      const total = WEIGHTS.reduce((a, w) => a + w, 0);
      const deltas = WEIGHTS.map((_, k) => deltaFor(params, 10 * j + k));
      for (let i = 0; i < params; i++) mean[i] = WEIGHTS.reduce((a, w, k) => a + w * deltas[k][i], 0) / total;
      const wFile = join(dir, `w0-${j}.json`);
      const dFile = join(dir, `d-${j}.json`);
      writeFileSync(wFile, JSON.stringify(Array.from(w0[j])));
      writeFileSync(dFile, JSON.stringify(Array.from(mean)));
      const expected = JSON.parse(
        execFileSync(
          '/usr/bin/python3',
          ['-c', ORACLE, wFile, dFile, JSON.stringify(strategy), String(ROUNDS)],
          {
            encoding: 'utf8',
            maxBuffer: 64 * 1024 * 1024,
          },
        ),
      ) as number[];
      const last = finals[j].sort((a, c) => a.number - c.number).at(-1)!;
      const got = await weightsOf(last.checkpointOut!);
      let worst = 0;
      for (let i = 0; i < params; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
      console.info(
        `${strategy.kind}: largest difference from numpy after ${ROUNDS} rounds ${worst.toExponential(2)}`,
      );
      expect(worst).toBeLessThan(2e-4);
    }
    // SCAFFOLD: no control variate in the first round; from the second on (across the restart, from
    // the state saved beside the checkpoint) the weighted mean of what the sites sent, unscaled.
    expect(controlsOffered.filter((c) => c.round === 0).map((c) => c.bytes)).toEqual([null, null, null]);
    const later = controlsOffered.filter((c) => c.round > 0);
    // Four more completed rounds of three sites (the round the restart aborted adds a number).
    expect(later.length).toBeGreaterThanOrEqual(3 * (ROUNDS - 1));
    const total = WEIGHTS.reduce((a, w) => a + w, 0);
    const sent = WEIGHTS.map((_, k) => controlFor(params, k));
    for (const { round, bytes } of later) {
      const { arrays, metadata } = decodeSafetensors(bytes!);
      expect(metadata['fedsynth.control']).toBe('scaffold');
      const c = flattenCanonical(arrays);
      expect(c.length).toBe(params);
      let worst = 0;
      for (let i = 0; i < params; i++) {
        const want = WEIGHTS.reduce((a, w, k) => a + w * sent[k][i], 0) / total / CONTROL_SCALE;
        worst = Math.max(worst, Math.abs(c[i] - want));
      }
      expect(worst, `round ${round}`).toBeLessThan(5e-4);
    }
  }, 600_000);
});
