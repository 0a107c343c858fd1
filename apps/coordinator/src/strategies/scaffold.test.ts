import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nextControl, parseFederationConfig } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { createStrategy, Scaffold } from './index';
import type { Strategy } from './strategy';
import { StrategyStateStore } from './strategy-state-store';

const configOf = (strategy: Record<string, unknown>) => parseFederationConfig({ strategy }).strategy;

/**
 * Three sites with diagonal quadratic losses f_i(w) = 1/2 sum_j a_ij (w_j - b_ij)^2 that disagree
 * (non-IID), weighted 10 / 30 / 60. The federation's optimum, by hand: w*_j = sum_i p_i a_ij b_ij /
 * sum_i p_i a_ij. Local training is K plain gradient steps of rate lr; FedAvg's K steps drift towards
 * each site's own optimum, so its fixed point is not w*; SCAFFOLD's corrections remove the drift.
 */
const DIMS = 6;
const P = [0.1, 0.3, 0.6];
const A = [
  [0.5, 4, 1, 2.5, 3, 0.8],
  [3, 0.6, 2, 1, 0.7, 3.5],
  [1.5, 2, 0.5, 4, 1.2, 0.9],
];
const B = [
  [1, -2, 0.5, 3, -1, 2],
  [-1.5, 1, 2, -0.5, 2.5, -2],
  [0.5, 0.5, -1, 1, 0, 1.5],
];
const OPTIMUM = Array.from({ length: DIMS }, (_, j) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < 3; i++) {
    num += P[i] * A[i][j] * B[i][j];
    den += P[i] * A[i][j];
  }
  return num / den;
});
const K = 10;
const LR = 0.08;

/** Runs `rounds` rounds; SCAFFOLD when `scaffold`, else FedAvg. A restart (state to disk and back) at `restartAt`. */
async function federate(kind: 'scaffold' | 'fedavg', rounds: number, restartAt = -1): Promise<Float32Array> {
  let strategy: Strategy = createStrategy(configOf({ kind }));
  const store = new StrategyStateStore(mkdtempSync(join(tmpdir(), 'scaffold-')));
  let w = new Float32Array(DIMS);
  const ci = [0, 1, 2].map(() => new Float32Array(DIMS));
  for (let r = 0; r < rounds; r++) {
    if (r === restartAt) {
      await store.save('a'.repeat(64), strategy);
      strategy = createStrategy(configOf({ kind }));
      strategy.loadState((await store.load('a'.repeat(64)))!, DIMS);
    }
    const c = strategy instanceof Scaffold ? (strategy.control() ?? new Float32Array(DIMS)) : null;
    const meanDelta = new Float32Array(DIMS);
    const meanControl = new Float32Array(DIMS);
    for (let i = 0; i < 3; i++) {
      const y = Float32Array.from(w);
      for (let s = 0; s < K; s++)
        for (let j = 0; j < DIMS; j++) {
          y[j] -= LR * A[i][j] * (y[j] - B[i][j]);
          if (c) y[j] += LR * (ci[i][j] - c[j]); // the drift correction
        }
      const moved = Float32Array.from(y, (v, j) => v - w[j]);
      if (c) {
        ci[i] = nextControl(ci[i], c, moved, K, LR);
        for (let j = 0; j < DIMS; j++) meanControl[j] += P[i] * ci[i][j];
      }
      for (let j = 0; j < DIMS; j++) meanDelta[j] += P[i] * moved[j];
    }
    w =
      strategy instanceof Scaffold
        ? strategy.aggregateWithControl(w, meanDelta, meanControl)
        : strategy.aggregate(w, meanDelta);
  }
  return w;
}

const distance = (w: Float32Array) => Math.max(...OPTIMUM.map((o, j) => Math.abs(w[j] - o)));

describe('SCAFFOLD', () => {
  it("reaches the federation's optimum of non-IID quadratics where FedAvg stays off it, across a restart", async () => {
    const scaffold = await federate('scaffold', 200, 100);
    const fedavg = await federate('fedavg', 200);
    expect(distance(scaffold)).toBeLessThan(1e-4);
    expect(distance(fedavg)).toBeGreaterThan(0.05);
  });

  it('keeps the mean control variate as c, and changes nothing when an input is refused', () => {
    const s = createStrategy(configOf({ kind: 'scaffold', lr: 0.5 })) as Scaffold;
    expect(s.control()).toBeNull();
    const w = Float32Array.of(1, 2);
    const out = s.aggregateWithControl(w, Float32Array.of(0.2, -0.4), Float32Array.of(3, -4));
    expect([...out]).toEqual([1.1, 1.8].map((v) => expect.closeTo(v, 6)));
    expect([...s.control()!]).toEqual([3, -4]);
    expect(() => s.aggregateWithControl(w, Float32Array.of(0, 0), Float32Array.of(1))).toThrow(
      'the mean control variate has 1 values; the model has 2',
    );
    expect(() => s.aggregateWithControl(w, Float32Array.of(0, 0), Float32Array.of(1, Number.NaN))).toThrow(
      "the mean control variate's value 1 is NaN; refusing it",
    );
    expect(() => s.aggregateWithControl(w, Float32Array.of(0, Number.NaN), Float32Array.of(1, 1))).toThrow(
      'meanDelta value 1 is NaN',
    );
    expect(() => s.aggregate(w, Float32Array.of(0, 0))).toThrow('needs the mean control variate');
    expect([...s.control()!]).toEqual([3, -4]);
    expect(s.saveState().steps).toBe(1);
  });
});
