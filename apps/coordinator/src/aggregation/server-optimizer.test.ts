import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { applyServerStep } from './server-optimizer';

// Independent oracle: the same update rules written in numpy, run for three rounds.
const ORACLE = `
import json, sys, numpy as np
w = np.array(json.loads(sys.argv[1]), dtype=np.float64); ds = np.array(json.loads(sys.argv[2]), dtype=np.float64)
out = {}
for kind in ['fedavg', 'fedadam', 'fedyogi']:
    x = w.copy(); m = np.zeros_like(x); v = np.full_like(x, 1e-3 ** 2)
    for d in ds:
        if kind == 'fedavg':
            x = x + 0.5 * d; continue
        m = 0.9 * m + 0.1 * d
        v = 0.99 * v + 0.01 * d * d if kind == 'fedadam' else v - 0.01 * d * d * np.sign(v - d * d)
        x = x + 0.01 * m / (np.sqrt(v) + 1e-3)
    out[kind] = x.tolist()
print(json.dumps(out))
`;

describe('server optimizers', () => {
  it('match an independent numpy implementation over three rounds', () => {
    const w = [0.5, -0.25, 1, 0, 2];
    const ds = [
      [0.1, -0.2, 0.05, 0, 0.3],
      [-0.05, 0.1, 0.02, 0.01, -0.3],
      [0.2, 0.2, -0.1, 0, 0.1],
    ];
    const oracle = JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', ORACLE, JSON.stringify(w), JSON.stringify(ds)], {
        encoding: 'utf8',
      }),
    );
    for (const kind of ['fedavg', 'fedadam', 'fedyogi'] as const) {
      let x = Float32Array.from(w);
      let state = {};
      for (const d of ds) {
        const cfg =
          kind === 'fedavg' ? { kind, lr: 0.5 } : { kind, lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
        ({ weights: x, state } = applyServerStep(x, Float32Array.from(d), cfg, state));
      }
      for (const [i, v] of x.entries()) expect(Math.abs(v - oracle[kind][i])).toBeLessThan(1e-5);
    }
  });

  it('refuses NaN deltas, wrong lengths and bad settings, naming them', () => {
    const w = new Float32Array(3);
    expect(() => applyServerStep(w, Float32Array.of(0, Number.NaN, 0), { kind: 'fedavg', lr: 1 })).toThrow(
      /value 1 is NaN/,
    );
    expect(() => applyServerStep(w, new Float32Array(2), { kind: 'fedavg', lr: 1 })).toThrow(
      /delta has 2 values; the model has 3/,
    );
    expect(() => applyServerStep(w, w, { kind: 'fedadam', lr: 1, beta1: 1, beta2: 0.9, tau: 1e-3 })).toThrow(
      /beta1/,
    );
    expect(() => applyServerStep(w, w, { kind: 'sgd' as never, lr: 1 })).toThrow(/kind/);
  });
});
