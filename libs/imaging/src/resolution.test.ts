import { describe, expect, it } from 'vitest';
import { lowerResolution } from './resolution';

describe('lowerResolution', () => {
  it('averages a one-pixel checkerboard away at factor 2 (each 2x2 cell holds two +1 and two -1)', () => {
    const size = 8;
    const img = Float32Array.from({ length: size * size }, (_, i) =>
      ((i % size) + Math.floor(i / size)) % 2 ? 1 : -1,
    );
    const out = lowerResolution(img, size, 1, 2);
    for (const v of out) expect(v).toBeCloseTo(0, 6);
  });

  it('keeps a constant image, and a linear ramp between the coarse cell centres, per channel', () => {
    const size = 8;
    const img = new Float32Array(size * size * 2);
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        img[(y * size + x) * 2] = 0.25;
        img[(y * size + x) * 2 + 1] = x; // ramp in x
      }
    const out = lowerResolution(img, size, 2, 2);
    // Cells of 2 pixels: coarse values 0.5, 2.5, 4.5, 6.5 at centres x = 0.5, 2.5, 4.5, 6.5; bilinear
    // between centres reproduces the ramp exactly there, and clamps outside (x = 0 -> 0.5, x = 7 -> 6.5).
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        expect(out[(y * size + x) * 2]).toBeCloseTo(0.25, 6);
        expect(out[(y * size + x) * 2 + 1]).toBeCloseTo(Math.min(6.5, Math.max(0.5, x)), 5);
      }
    }
  });

  it('copies at factor 1 and refuses an image of the wrong length', () => {
    const img = Float32Array.from([1, 2, 3, 4]);
    expect([...lowerResolution(img, 2, 1, 1)]).toEqual([1, 2, 3, 4]);
    expect(() => lowerResolution(img, 3, 1, 2)).toThrow(/has 4 values; 3x3x1 needs 9/);
  });
});
