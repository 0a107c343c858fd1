/** The finite range of voxel values and how many are NaN, +Infinity or -Infinity. */
export interface ValueStats {
  /** Smallest finite value (Infinity when there is none). */
  min: number;
  /** Largest finite value (-Infinity when there is none). */
  max: number;
  nan: number;
  posInf: number;
  negInf: number;
}

/** Range and non-finite counts of voxel data, in one pass. */
export function valueStats(data: ArrayLike<number>): ValueStats {
  let min = Infinity;
  let max = -Infinity;
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    // x - x is 0 exactly for finite x and NaN for NaN and both infinities: one test on the hot path.
    if (x - x === 0) {
      if (x < min) min = x;
      if (x > max) max = x;
    } else if (x === Infinity) posInf++;
    else if (x === -Infinity) negInf++;
    else nan++;
  }
  return { min, max, nan, posInf, negInf };
}

/** How many values are not finite. */
export function nonFiniteCount(s: ValueStats): number {
  return s.nan + s.posInf + s.negInf;
}

/** "3 non-finite voxels (1 NaN, 2 -Infinity)", or '' when every value is finite. */
export function describeNonFinite(s: ValueStats): string {
  const n = nonFiniteCount(s);
  if (n === 0) return '';
  const parts = [
    [s.nan, 'NaN'],
    [s.posInf, '+Infinity'],
    [s.negInf, '-Infinity'],
  ]
    .filter(([k]) => (k as number) > 0)
    .map(([k, what]) => `${k} ${what}`);
  return `${n} non-finite voxel${n === 1 ? '' : 's'} (${parts.join(', ')})`;
}
