import { describe, expect, it } from 'vitest';
import { roundMetrics } from './round-metrics';

const ev = (mae: number, psnr: number, ssim: number, count: number) => ({
  roundId: 'f:1',
  modelHash: 'a'.repeat(64),
  mae,
  psnr,
  ssim,
  count,
});

describe('roundMetrics', () => {
  it('weighs each site by its slice count capped at maxEvalCount: a site claiming 2^52 slices weighs the cap', () => {
    const rows = roundMetrics({
      federationId: 'f',
      roundNumber: 1,
      siteIdOf: (i) => `site-${i}`,
      survivors: [1, 2, 3],
      trainReports: new Map([
        [1, { roundId: 'f:1', loss: 0.2, steps: 5, epsilon: 1.5 }],
        [2, { roundId: 'f:1', loss: 0.4, steps: 5, epsilon: 2.5 }],
        [4, { roundId: 'f:1', loss: 900, steps: 5, epsilon: null }], // not a survivor: not counted
      ]),
      evalReports: new Map([
        [1, ev(60, 30, 0.9, 100)],
        [2, ev(62, 31, 0.8, 120)],
        [3, ev(1, 60, 1, 2 ** 52)],
      ]),
      maxEvalCount: 1000,
    });
    const global = (name: string) => rows.find((r) => r.siteId === null && r.name === name)!;
    // By hand: (60*100 + 62*120 + 1*1000) / (100 + 120 + 1000) = 14440 / 1220.
    expect(global('mae').value).toBeCloseTo(14440 / 1220, 12);
    expect(global('mae').count).toBe(1220);
    expect(global('psnr').value).toBeCloseTo((30 * 100 + 31 * 120 + 60 * 1000) / 1220, 12);
    expect(global('ssim').value).toBeCloseTo((0.9 * 100 + 0.8 * 120 + 1000) / 1220, 12);
    expect(rows.find((r) => r.siteId === 'site-3' && r.name === 'mae')!.count).toBe(1000);
    expect(global('train_loss').value).toBeCloseTo(0.3, 12);
    expect(global('epsilon').value).toBe(2.5);
    expect(global('sites').value).toBe(3);
    // Every count fits PostgreSQL's integer column.
    for (const r of rows) expect(r.count).toBeLessThanOrEqual(2 ** 31 - 1);
  });

  it('with the cap above every honest count, the honest weighted mean is unchanged when the liar is capped out', () => {
    const honest = new Map([
      [1, ev(60, 30, 0.9, 100)],
      [2, ev(62, 31, 0.8, 120)],
    ]);
    const base = roundMetrics({
      federationId: 'f',
      roundNumber: 0,
      siteIdOf: String,
      survivors: [1, 2],
      trainReports: new Map(),
      evalReports: honest,
      maxEvalCount: 10_000,
    });
    expect(base.find((r) => r.siteId === null && r.name === 'mae')!.value).toBeCloseTo(
      (60 * 100 + 62 * 120) / 220,
      12,
    );
  });

  it('weighs the memorization figures by slices and gives the global ratio (hand-computed); DP rows from the coordinator', () => {
    const rows = roundMetrics({
      federationId: 'f',
      roundNumber: 2,
      siteIdOf: (i) => `site-${i}`,
      survivors: [1, 2, 3],
      trainReports: new Map([[1, { roundId: 'f:2', loss: 0.2, steps: 5, epsilon: 9 }]]),
      evalReports: new Map([
        [1, { ...ev(60, 30, 0.9, 10), nearestSynth: 0.2, nearestReal: 0.4 }],
        [2, { ...ev(62, 31, 0.8, 30), nearestSynth: 0.1, nearestReal: 0.3 }],
        [3, ev(61, 30, 0.9, 20)], // an older agent without the check: left out of it
      ]),
      maxEvalCount: 1000,
      dp: { noiseMultiplier: 1, delta: 1e-5, threshold: 3, history: [] },
    });
    const global = (name: string) => rows.find((r) => r.siteId === null && r.name === name);
    // (0.2*10 + 0.1*30) / 40 = 0.125; (0.4*10 + 0.3*30) / 40 = 0.325.
    expect(global('nearest_synth')!.value).toBeCloseTo(0.125, 12);
    expect(global('nearest_real')!.value).toBeCloseTo(0.325, 12);
    expect(global('memorization_ratio')!.value).toBeCloseTo(0.125 / 0.325, 12);
    expect(global('nearest_synth')!.count).toBe(40);
    expect(rows.filter((r) => r.siteId === 'site-3' && r.name.startsWith('nearest'))).toHaveLength(0);
    // With DP the global epsilon is the coordinator's own account at z sqrt(3 / 3) = 1, not a site's 9.
    expect(global('dp_noise_multiplier')!.value).toBe(1);
    expect(global('epsilon')!.value).toBeLessThan(9);
    expect(rows.find((r) => r.siteId === 'site-1' && r.name === 'epsilon')!.value).toBe(9);
  });

  it('a report without figures (they went into the masked vector) adds no loss or epsilon row', () => {
    const rows = roundMetrics({
      federationId: 'f',
      roundNumber: 3,
      siteIdOf: (i) => `site-${i}`,
      survivors: [1, 2, 3],
      trainReports: new Map([
        [1, { roundId: 'f:3', steps: 5 }],
        [2, { roundId: 'f:3', steps: 5 }],
      ]),
      evalReports: new Map(),
      maxEvalCount: 1000,
    });
    expect(rows.map((r) => r.name)).toEqual(['sites']);
  });
});
