import { describe, expect, it } from 'vitest';
import { memorizationFigures, nearestDistances } from './memorization';
import { mulberry32 } from './rng';

describe('memorization figures', () => {
  it('finds each image its nearest reference by RMS distance (hand-computed)', () => {
    const train = [Float32Array.of(0, 1), Float32Array.of(3, 3)];
    // (1,1): to (0,1) sqrt(1/2), to (3,3) sqrt(8/2) = 2 -> 0.7071; (3,2): to (3,3) sqrt(1/2).
    const d = nearestDistances([Float32Array.of(1, 1), Float32Array.of(3, 2), Float32Array.of(0, 1)], train);
    expect(d[0]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(d[1]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(d[2]).toBe(0);
    expect(() => nearestDistances([Float32Array.of(1)], train)).toThrow(/cannot be compared/);
    expect(() => nearestDistances([Float32Array.of(1)], [])).toThrow(/no reference/);
  });

  it('puts copies of training images at ratio 0 and fresh images near 1', () => {
    // Independent random images: every pair about equally far apart.
    const img = (seed: number) => {
      const r = mulberry32(seed);
      return Float32Array.from({ length: 64 }, () => r() * 2 - 1);
    };
    const train = Array.from({ length: 20 }, (_, k) => img(k));
    const real = [img(100), img(101)];
    const copied = memorizationFigures([train[3], train[7]], real, train);
    expect(copied.synthToTrain).toBe(0);
    expect(copied.ratio).toBe(0);
    const fresh = memorizationFigures([img(200), img(201)], real, train);
    expect(fresh.ratio).toBeGreaterThan(0.8);
    expect(fresh.ratio).toBeLessThan(1.25);
  });
});
