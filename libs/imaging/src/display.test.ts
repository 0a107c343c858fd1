import { describe, expect, it } from 'vitest';
import { ctGrey, sideBySide, stretchGrey } from './display';

describe('display strips', () => {
  it('puts panels side by side, anterior up, scaled, with white gaps', () => {
    // 2x2 panels, x fastest: row y=0 is [a, b], row y=1 is [c, d].
    const p = Float32Array.of(1, 2, 3, 4);
    const q = Float32Array.of(5, 6, 7, 8);
    const s = sideBySide([p, q], 2, 2, { scale: 2, gap: 1 });
    expect([s.width, s.height]).toEqual([9, 4]);
    const row = (y: number) => [...s.data.subarray(y * 9, (y + 1) * 9)];
    expect(row(0)).toEqual([3, 3, 4, 4, 255, 7, 7, 8, 8]);
    expect(row(3)).toEqual([1, 1, 2, 2, 255, 5, 5, 6, 6]);
    expect(() => sideBySide([p, Float32Array.of(1)], 2, 2)).toThrow(/panel 1/);
  });

  it('windows CT to -1000..1500 HU and stretches other images to 0..255', () => {
    expect([ctGrey(-2000), ctGrey(-1000), ctGrey(250), ctGrey(3000)]).toEqual([0, 0, 127.5, 255]);
    expect([...stretchGrey(Float32Array.of(2, 4, 6))]).toEqual([0, 127.5, 255]);
    expect([...stretchGrey(Float32Array.of(3, 3))]).toEqual([0, 0]);
  });
});
