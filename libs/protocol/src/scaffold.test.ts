import { describe, expect, it } from 'vitest';
import { controlScale, nextControl } from './scaffold';

describe('SCAFFOLD control variates', () => {
  it('next control variate: ci - c - (y - x) / (K lr), by hand', () => {
    const ci = Float32Array.of(0.5, -1, 0);
    const c = Float32Array.of(0.25, 0.5, -0.5);
    const moved = Float32Array.of(0.01, -0.02, 0.004); // y - x after K = 4 steps at lr 0.005: / 0.02
    const got = nextControl(ci, c, moved, 4, 0.005);
    // 0.5 - 0.25 - 0.5 = -0.25; -1 - 0.5 + 1 = -0.5; 0 + 0.5 - 0.2 = 0.3
    expect([...got].map((v) => Number(v.toFixed(6)))).toEqual([-0.25, -0.5, 0.3]);
  });

  it("with c = ci (the first round), is the round's mean step in units of lr, sign reversed", () => {
    const zero = new Float32Array(2);
    expect([...nextControl(zero, zero, Float32Array.of(-0.03, 0.06), 3, 0.01)]).toEqual([
      expect.closeTo(1, 6),
      expect.closeTo(-2, 6),
    ]);
  });

  it('refuses vectors of other lengths and steps or rates that are not positive, naming them', () => {
    const a = new Float32Array(3);
    expect(() => nextControl(a, new Float32Array(2), a, 1, 0.1)).toThrow(
      'control variates of 2 values for a model of 3',
    );
    expect(() => nextControl(a, a, a, 0, 0.1)).toThrow('steps must be a positive integer, got 0');
    expect(() => nextControl(a, a, a, 2, -1)).toThrow('lr must be positive, got -1');
  });

  it("the wire scale is the plan's local steps times its learning rate", () => {
    expect(controlScale({ localSteps: 30, lr: 0.002 })).toBeCloseTo(0.06, 12);
    expect(() => controlScale({ localSteps: 0, lr: 0.002 })).toThrow('above 0');
  });
});
