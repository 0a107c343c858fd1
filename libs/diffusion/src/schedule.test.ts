import { describe, expect, it } from 'vitest';
import { makeSchedule, SCHEDULES } from './schedule';

describe('noise schedules', () => {
  it('produce increasing betas in (0, 1) and decreasing cumulative alphas for every kind', () => {
    for (const name of Object.keys(SCHEDULES) as (keyof typeof SCHEDULES)[]) {
      const s = makeSchedule(name, 1000);
      for (let i = 1; i < 1000; i++) {
        expect(s.betas[i]).toBeGreaterThanOrEqual(s.betas[i - 1] - 1e-12);
        expect(s.alphasCumprod[i]).toBeLessThan(s.alphasCumprod[i - 1]);
      }
      expect(s.betas[0]).toBeGreaterThan(0);
      expect(s.betas[999]).toBeLessThan(1);
    }
  });

  it('match their definitions at the ends', () => {
    const lin = makeSchedule('linear', 1000);
    expect(lin.betas[0]).toBeCloseTo(1e-4, 12);
    expect(lin.betas[999]).toBeCloseTo(2e-2, 12);
    const sl = makeSchedule('scaled-linear', 1000);
    expect(sl.betas[0]).toBeCloseTo(0.0015, 12);
    expect(sl.betas[999]).toBeCloseTo(0.0195, 12);
    const cos = makeSchedule('cosine', 1000);
    const f = (t: number) => Math.cos(((t / 1000 + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(cos.alphasCumprod[499]).toBeCloseTo(f(500) / f(0), 10);
    expect(() => makeSchedule('quadratic' as never)).toThrow(/unknown schedule/);
  });
});
