import { describe, expect, it } from 'vitest';
import { COMPARE_SET, parseVariant } from './strategy-spec';

describe('parseVariant', () => {
  it('reads a strategy with its settings and the plan settings', () => {
    expect(parseVariant('fedavgm:momentum=0.5,lr=2', 5, 30)).toEqual({
      label: 'fedavgm:momentum=0.5,lr=2',
      strategy: { kind: 'fedavgm', momentum: 0.5, lr: 2 },
      plan: {},
    });
    expect(parseVariant('fedprox', 5, 30).strategy).toEqual({ kind: 'fedavg', proxMu: 0.01 });
    expect(parseVariant('fedprox:mu=0.1', 5, 30).strategy).toEqual({ kind: 'fedavg', proxMu: 0.1 });
    expect(parseVariant('scaffold:lr=0.9', 5, 30).strategy).toEqual({ kind: 'scaffold', lr: 0.9 });
    expect(() => parseVariant('scaffold:momentum=0.9', 5, 30)).toThrow(
      /unknown key "momentum"; scaffold takes lr, mu/,
    );
    expect(parseVariant('fedavg:ema=0.9,cosine=0.1', 5, 30).plan).toEqual({
      localEma: 0.9,
      lrSchedule: { kind: 'cosine', minFactor: 0.1 },
    });
  });

  it("reads the optimizer carry and the sites' own learning rate", () => {
    expect(parseVariant('fedavg:keepopt=1,locallr=0.002', 5, 30).plan).toEqual({
      keepOptimizer: true,
      lr: 0.002,
    });
    expect(parseVariant('fedavg:keepopt=0', 5, 30).plan).toEqual({ keepOptimizer: false });
    expect(() => parseVariant('fedavg:keepopt=2', 5, 30)).toThrow(/keepopt must be 1 or 0, got 2/);
    expect(() => parseVariant('fedavg:locallr=3', 5, 30)).toThrow(/lr must be in \(0, 1\)/);
  });

  it('splits the same total steps into other rounds', () => {
    expect(parseVariant('fedavg:rounds=2x', 5, 30).rounds).toBe(10);
    expect(parseVariant('fedavg:rounds=3', 6, 10).rounds).toBe(3);
    expect(() => parseVariant('fedavg:rounds=4', 5, 30)).toThrow(/cannot be split evenly into 4 rounds/);
  });

  it('names what is wrong', () => {
    expect(() => parseVariant('fedfoo', 5, 30)).toThrow(/unknown strategy "fedfoo"/);
    expect(() => parseVariant('fedavg:momentum=0.9', 5, 30)).toThrow(
      /unknown key "momentum"; fedavg takes lr, mu, ema, cosine, keepopt, locallr, rounds/,
    );
    expect(() => parseVariant('fedadam:lr=x', 5, 30)).toThrow(/lr must be a number, got x/);
    expect(() => parseVariant('fedavg:ema=1', 5, 30)).toThrow(/plan\.localEma: localEma must be in \[0, 1\)/);
    expect(() => parseVariant('fedavgm:lr', 5, 30)).toThrow(/"lr" is not key=value/);
  });

  it('accepts every variant of the comparison set at the bench defaults', () => {
    for (const spec of COMPARE_SET) expect(() => parseVariant(spec, 5, 30)).not.toThrow();
  });
});
