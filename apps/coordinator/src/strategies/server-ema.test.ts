import { describe, expect, it } from 'vitest';
import { serverEmaStep, serverEmaWeight } from './server-ema';

describe('server moving average', () => {
  it('warms up as (1 + t) / (10 + t), capped at the decay', () => {
    expect(serverEmaWeight(0.9, 0)).toBeCloseTo(0.1, 12);
    expect(serverEmaWeight(0.9, 1)).toBeCloseTo(2 / 11, 12);
    expect(serverEmaWeight(0.9, 80)).toBeCloseTo(81 / 90, 12);
    expect(serverEmaWeight(0.9, 1000)).toBe(0.9);
    expect(serverEmaWeight(0.05, 0)).toBe(0.05);
  });

  it('mixes the previous average and the weights, by hand', () => {
    // t = 2: d = 3/12 = 0.25 -> 0.25 * [4, -8] + 0.75 * [0, 8] = [1, 4]
    expect([...serverEmaStep(Float32Array.from([4, -8]), Float32Array.from([0, 8]), 0.9, 2)]).toEqual([1, 4]);
  });

  it('refuses vectors of different lengths, a decay out of range and a bad count', () => {
    expect(() => serverEmaStep(new Float32Array(2), new Float32Array(3), 0.9, 0)).toThrow(
      /average holds 2 values; the weights 3/,
    );
    expect(() => serverEmaWeight(1, 0)).toThrow(/decay must be in \[0, 1\)/);
    expect(() => serverEmaWeight(0.5, -1)).toThrow(/update number must be a count/);
  });
});
