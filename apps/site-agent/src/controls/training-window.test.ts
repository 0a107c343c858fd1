import { describe, expect, it } from 'vitest';
import { isWithinWindow, parseTrainingWindow } from './training-window';

const at = (h: number, m = 0) => new Date(2026, 0, 1, h, m);

describe('training window', () => {
  it('handles windows that wrap past midnight', () => {
    const w = parseTrainingWindow('20:00-06:00');
    expect(isWithinWindow(w, at(20))).toBe(true);
    expect(isWithinWindow(w, at(23, 59))).toBe(true);
    expect(isWithinWindow(w, at(3))).toBe(true);
    expect(isWithinWindow(w, at(6))).toBe(false);
    expect(isWithinWindow(w, at(12))).toBe(false);
    expect(isWithinWindow(w, at(19, 59))).toBe(false);
  });

  it('handles same-day windows, whole days and "always"', () => {
    const w = parseTrainingWindow('09:30-17:00');
    expect(isWithinWindow(w, at(9, 29))).toBe(false);
    expect(isWithinWindow(w, at(9, 30))).toBe(true);
    expect(isWithinWindow(w, at(17))).toBe(false);
    expect(isWithinWindow(parseTrainingWindow('00:00-00:00'), at(13))).toBe(true);
    expect(parseTrainingWindow('always')).toBeNull();
    expect(isWithinWindow(null, at(4))).toBe(true);
  });

  it('names the malformed part', () => {
    expect(() => parseTrainingWindow('20-06')).toThrow(/start "20"/);
    expect(() => parseTrainingWindow('20:00-25:00')).toThrow(/end "25:00"/);
    expect(() => parseTrainingWindow('20:00')).toThrow(/must look like/);
  });
});
