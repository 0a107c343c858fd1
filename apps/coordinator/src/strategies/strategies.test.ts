import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFederationConfig, type StrategyConfig, trainingPlan } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { createStrategy } from './index';
import { StrategyStateStore } from './strategy-state-store';

// Independent oracle: the update rules in float64 numpy, carrying m / v / momentum across rounds.
const ORACLE = `
import json, sys, numpy as np
job = json.load(sys.stdin); c = job['config']; k = c['kind']
x = np.array(job['w'], dtype=np.float64); signs = set()
m = np.zeros_like(x); v = np.full_like(x, c.get('tau', 0) ** 2); mom = np.zeros_like(x)
for d in (np.array(r, dtype=np.float64) for r in job['deltas']):
    if k == 'fedavg':
        x = x + c['lr'] * d; continue
    if k == 'fedavgm':
        mom = c['momentum'] * mom + d; x = x + c['lr'] * mom; continue
    m = c['beta1'] * m + (1 - c['beta1']) * d
    if k == 'fedadam':
        v = c['beta2'] * v + (1 - c['beta2']) * d * d
    else:
        s = np.sign(v - d * d); signs.update(s.tolist()); v = v - (1 - c['beta2']) * d * d * s
    x = x + c['lr'] * m / (np.sqrt(v) + c['tau'])
print(json.dumps({'w': x.tolist(), 'signs': sorted(signs)}))
`;

/** mulberry32: a small seeded generator, so the vectors are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const N = 4096;
// Per-round scales, large then small, so that Yogi's v moves both up and down.
const SCALES = [0.05, 0.002, 0.03, 0.0005, 0.01];

function strategyConfig(strategy: Record<string, unknown>): StrategyConfig {
  return parseFederationConfig({ strategy }).strategy;
}

const sha = (w: Float32Array) => createHash('sha256').update(new Uint8Array(w.buffer)).digest('hex');

describe('strategies over five rounds, restarted after round 2', () => {
  const cases: Record<string, unknown>[] = [
    { kind: 'fedadam', lr: 0.05, beta1: 0.8, beta2: 0.95, tau: 0.01, proxMu: 0.1 },
    { kind: 'fedadam' },
    { kind: 'fedyogi' },
    { kind: 'fedyogi', lr: 0.02, beta1: 0.7, beta2: 0.9, tau: 0.005 },
    { kind: 'fedavgm', lr: 0.7, momentum: 0.6 },
    { kind: 'fedavg', lr: 1.5 },
  ];
  it.each(cases)('$kind %o matches the numpy reference', async (raw) => {
    // Arrange
    const config = strategyConfig(raw);
    const next = rng(0x5eed + cases.indexOf(raw));
    const w0 = Float32Array.from({ length: N }, () => 2 * next() - 1);
    const deltas = SCALES.map((s) => Float32Array.from({ length: N }, () => s * (2 * next() - 1)));
    const job = { config, w: [...w0], deltas: deltas.map((d) => [...d]) };
    const oracle = JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', ORACLE], { input: JSON.stringify(job), encoding: 'utf8' }),
    ) as { w: number[]; signs: number[] };
    const store = new StrategyStateStore(mkdtempSync(join(tmpdir(), 'strategy-')));

    // Act
    let strategy = createStrategy(config);
    let w: Float32Array = w0;
    for (const [round, d] of deltas.entries()) {
      if (round === 2) {
        // A coordinator restart: the state goes to disk beside the checkpoint and into a new object.
        await store.save(sha(w), strategy);
        strategy = createStrategy(config);
        strategy.loadState((await store.load(sha(w)))!, N);
      }
      const before = Float32Array.from(d);
      w = strategy.aggregate(w, d);
      expect(d).toEqual(before);
    }

    // Assert
    let worst = 0;
    for (let i = 0; i < N; i++) worst = Math.max(worst, Math.abs(w[i] - oracle.w[i]));
    expect(worst).toBeLessThan(2e-6);
    expect(strategy.saveState().steps).toBe(5);
    if (config.kind === 'fedyogi') expect(oracle.signs).toEqual([-1, 1]);
  });

  it('a carried FedAdam state takes a second step ~1.9x the first; a fresh state repeats it', () => {
    // Arrange: equal small deltas (|d| << tau), defaults lr 0.01, b1 0.9, b2 0.99, tau 1e-3.
    const config = strategyConfig({ kind: 'fedadam' });
    const d = new Float32Array(8).fill(1e-5);
    const w0 = new Float32Array(8);
    const carried = createStrategy(config);

    // Act
    const w1 = carried.aggregate(w0, d);
    const w2 = carried.aggregate(w1, d);
    const w2Fresh = createStrategy(config).aggregate(w1, d);

    // Assert: m = 0.19 d against 0.1 d, with sqrt(v) + tau ~ 2 tau both times.
    const first = w1[0] - w0[0];
    expect((w2[0] - w1[0]) / first).toBeGreaterThan(1.85);
    expect((w2[0] - w1[0]) / first).toBeLessThan(1.95);
    expect(Math.abs((w2Fresh[0] - w1[0]) / first - 1)).toBeLessThan(1e-3);
  });
});

describe('configureRound', () => {
  it('draws the sites and gives exactly the protocol training plan', () => {
    const config = parseFederationConfig({
      model: { size: 32 },
      plan: { localSteps: 7, batchSize: 4, lr: 1e-3, prediction: 'v', schedule: 'linear', fraction: 0.5 },
      dp: { clip: 2, noiseMultiplier: 0.5, delta: 1e-6 },
      strategy: { kind: 'fedyogi', proxMu: 0.25 },
    });
    const sut = createStrategy(config.strategy);

    const { siteIds, plan } = sut.configureRound({
      roundId: 'f:1',
      online: ['e', 'a', 'c', 'b', 'd', 'f'],
      config,
    });

    expect(siteIds).toHaveLength(3);
    expect(trainingPlan.parse(plan)).toEqual(plan);
    // Every field of the protocol's plan but the optional local EMA and SCAFFOLD's part, sent only when set.
    expect(Object.keys(plan).sort()).toEqual(
      Object.keys(trainingPlan.shape)
        .filter((k) => k !== 'localEma' && k !== 'scaffold')
        .sort(),
    );
    expect(plan).toEqual({
      localSteps: 7,
      batchSize: 4,
      lr: 1e-3,
      size: 32,
      prediction: 'v',
      schedule: 'linear',
      fedProxMu: 0.25,
      keepOptimizer: true,
      dp: { clip: 2, noiseMultiplier: 0.5, delta: 1e-6 },
    });
  });
});

describe('learning-rate schedule across rounds', () => {
  // `round` counts from 1 here; the coordinator numbers rounds from 0.
  const planOf = (round: number, plan: object) =>
    createStrategy(parseFederationConfig({ plan }).strategy).configureRound({
      roundId: `f:${round}`,
      roundNumber: round - 1,
      online: ['a', 'b', 'c'],
      config: parseFederationConfig({ plan }),
    }).plan;

  it('is constant by default', () => {
    for (const n of [1, 2, 50]) expect(planOf(n, { lr: 0.002 }).lr).toBe(0.002);
  });

  it('follows a cosine from lr to lr * minFactor over the given rounds, then holds', () => {
    const plan = { lr: 0.001, lrSchedule: { kind: 'cosine', minFactor: 0.2, rounds: 5 } };
    // By hand: factor = 0.2 + 0.8 * (1 + cos(pi * (n - 1) / 4)) / 2 for n = 1..5.
    const expected = [1, 0.2 + 0.4 * (1 + Math.SQRT1_2), 0.6, 0.2 + 0.4 * (1 - Math.SQRT1_2), 0.2, 0.2, 0.2];
    for (const [i, f] of expected.entries()) expect(planOf(i + 1, plan).lr).toBeCloseTo(0.001 * f, 12);
  });

  it("takes the plan's rounds when the schedule names none, and refuses a schedule of no length", () => {
    const plan = { lr: 0.01, rounds: 3, lrSchedule: { kind: 'cosine', minFactor: 0 } };
    expect(planOf(2, plan).lr).toBeCloseTo(0.005, 12);
    expect(planOf(3, plan).lr).toBeCloseTo(0, 12);
    expect(() => parseFederationConfig({ plan: { lrSchedule: { kind: 'cosine' } } })).toThrow(
      /plan\.lrSchedule\.rounds: a cosine schedule needs its length/,
    );
  });

  it('sends the local EMA decay only when it is set', () => {
    expect(planOf(1, {})).not.toHaveProperty('localEma');
    expect(planOf(1, { localEma: 0.9 }).localEma).toBe(0.9);
    expect(() => parseFederationConfig({ plan: { localEma: 1 } })).toThrow(/localEma must be in \[0, 1\)/);
  });

  it('asks sites to keep their optimizer state by default, and not when the plan says false', () => {
    expect(planOf(1, {}).keepOptimizer).toBe(true);
    expect(planOf(1, { keepOptimizer: false })).not.toHaveProperty('keepOptimizer');
    expect(planOf(1, { keepOptimizer: true }).keepOptimizer).toBe(true);
    expect(trainingPlan.parse(planOf(1, { keepOptimizer: true })).keepOptimizer).toBe(true);
    expect(() => parseFederationConfig({ plan: { keepOptimizer: 'yes' } })).toThrow(/keepOptimizer/);
  });
});
