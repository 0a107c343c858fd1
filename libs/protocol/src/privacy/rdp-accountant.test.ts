import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { effectiveNoiseMultiplier, privacySpent } from './distributed-dp';
import { DEFAULT_ORDERS, RdpAccountant, rdpToEpsilon, sampledGaussianRdp } from './rdp-accountant';

// Independent oracle: the Rényi divergence of the sampled Gaussian mechanism computed by numerical
// integration (scipy.integrate.quad) of E_{x~N(0,s^2)}[((1-q) + q exp((2x-1)/(2 s^2)))^a].
const ORACLE = `
import json, sys, math
import numpy as np
from scipy import integrate
cases = json.loads(sys.argv[1])
out = []
def mix(q, y):
    return y if q == 1 else float(np.logaddexp(math.log(1 - q), math.log(q) + y))
for q, s, a in cases:
    f = lambda x: math.exp(-x*x/(2*s*s) - math.log(s*math.sqrt(2*math.pi)) + a*mix(q, (2*x-1)/(2*s*s)))
    val, _ = integrate.quad(f, -60*s, 60*s + a/s/s + 10, limit=500, epsabs=0, epsrel=1e-12)
    out.append(math.log(val)/(a-1))
print(json.dumps(out))
`;

describe('sampledGaussianRdp', () => {
  it('matches numerical integration of the Rényi divergence', () => {
    const cases: [number, number, number][] = [
      [0.01, 1.1, 2],
      [0.01, 1.1, 8],
      [0.1, 0.8, 4],
      [0.3, 1.5, 16],
      [0.05, 2.0, 32],
      [1, 1.3, 6],
    ];
    const oracle = JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', ORACLE, JSON.stringify(cases)], { encoding: 'utf8' }),
    );
    cases.forEach(([q, s, a], i) => {
      const ours = sampledGaussianRdp(q, s, a);
      expect(Math.abs(ours - oracle[i]) / Math.max(oracle[i], 1e-12)).toBeLessThan(1e-6);
    });
  });

  it('reduces to a/(2 z^2) without subsampling and to 0 when never sampled', () => {
    expect(sampledGaussianRdp(1, 2, 10)).toBeCloseTo(10 / 8, 12);
    expect(sampledGaussianRdp(0, 2, 10)).toBe(0);
  });

  it('refuses parameters outside their domain', () => {
    expect(() => sampledGaussianRdp(1.5, 1, 2)).toThrow(/sampling probability/);
    expect(() => sampledGaussianRdp(0.5, 0, 2)).toThrow(/noise multiplier/);
    expect(() => sampledGaussianRdp(0.5, 1, 1.5)).toThrow(/order/);
  });
});

describe('the distributed-noise case', () => {
  it('accounts a round of k survivors of threshold t at the divergence of their summed noise (numerical integration)', () => {
    // Each survivor adds N(0, (z C)^2 / t); k of them sum to a Gaussian of std z C sqrt(k / t). The
    // oracle integrates the divergence of that summed mechanism (sensitivity C = 1) directly.
    const cases: [number, number, number, number][] = [
      [1.0, 5, 3, 4], // z, k, t, order
      [0.8, 3, 3, 8],
      [1.3, 10, 4, 16],
      [2.0, 7, 7, 32],
    ];
    const oracle = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        ['-c', ORACLE, JSON.stringify(cases.map(([z, k, t, a]) => [1, z * Math.sqrt(k / t), a]))],
        { encoding: 'utf8' },
      ),
    );
    cases.forEach(([z, k, t, a], i) => {
      const ours = sampledGaussianRdp(1, effectiveNoiseMultiplier(z, k, t), a);
      expect(Math.abs(ours - oracle[i]) / oracle[i]).toBeLessThan(1e-6);
    });
    // More survivors than the threshold only add noise: the spent epsilon falls, never rises.
    expect(privacySpent([effectiveNoiseMultiplier(1, 5, 3)], 1e-5)).toBeLessThan(privacySpent([1], 1e-5));
    expect(() => effectiveNoiseMultiplier(1, 2, 3)).toThrow(/at least 3 survivors/);
  });
});

describe('RdpAccountant', () => {
  it('grows epsilon with rounds, shrinks it with more noise, and survives a JSON round trip', () => {
    const a = new RdpAccountant();
    expect(a.epsilon(1e-5)).toBe(0);
    a.record(1.0);
    const one = a.epsilon(1e-5);
    a.record(1.0, 1, 9);
    const ten = a.epsilon(1e-5);
    expect(ten).toBeGreaterThan(one);
    const noisier = new RdpAccountant();
    noisier.record(2.0, 1, 10);
    expect(noisier.epsilon(1e-5)).toBeLessThan(ten);
    const restored = new RdpAccountant(JSON.parse(JSON.stringify(a)));
    expect(restored.epsilon(1e-5)).toBe(ten);
    expect(restored.rounds).toBe(10);
  });

  it('gives the closed-form optimum for the plain Gaussian mechanism within the order grid', () => {
    // For q = 1, RDP(a) = T a / (2 z^2); a brute-force minimum over every integer order 2..256 can
    // only be at least as good as the default grid, and the grid must be close to it.
    const z = 1.0;
    const T = 20;
    const delta = 1e-5;
    const all = Array.from({ length: 255 }, (_, i) => i + 2);
    const brute = rdpToEpsilon(
      all.map((o) => (T * o) / (2 * z * z)),
      all,
      delta,
    ).epsilon;
    const acc = new RdpAccountant();
    acc.record(z, 1, T);
    expect(acc.epsilon(delta)).toBeGreaterThanOrEqual(brute - 1e-12);
    expect(acc.epsilon(delta)).toBeLessThan(brute * 1.05);
    expect(DEFAULT_ORDERS.length).toBeGreaterThan(10);
  });
});
