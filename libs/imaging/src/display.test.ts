import { describe, expect, it } from 'vitest';
import { ctGrey, sideBySide, stretchGrey, withColourBar } from './display';

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

  it('adds a bar from black (lo) at the bottom to white (hi) at the top, labelled in black', () => {
    const strip = { data: new Float32Array(10 * 120).fill(128), width: 10, height: 120 };
    const out = withColourBar(strip, -1000, 1500, { gap: 2, barWidth: 4 });
    // The strip is copied unchanged; the bar starts after the gap.
    expect(out.data[5 * out.width + 3]).toBe(128);
    expect(out.data[0 * out.width + 12]).toBe(255);
    expect(out.data[119 * out.width + 12]).toBe(0);
    expect(out.data[60 * out.width + 12]).toBeCloseTo(255 * (1 - 60 / 119), 4);
    // Labels: '1500' at the top right of the bar; its first glyph '1' has a pixel in row 0, column 1.
    const tx = 10 + 2 + 4 + 4;
    expect(out.data[0 * out.width + tx + 1]).toBe(0);
    expect(out.data[0 * out.width + tx]).toBe(255);
    expect(out.height).toBe(120);
  });
});
