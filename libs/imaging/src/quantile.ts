/**
 * Values at quantiles `qs` (each 0..1) of the selected voxels, by linear interpolation between
 * order statistics (numpy's default, "linear"): the value at q is the sorted values' entry at
 * q (n - 1), interpolated. One sort serves every quantile. NaN for each when nothing is selected.
 */
export function quantiles(
  values: Float32Array,
  qs: readonly number[],
  select?: Uint8Array | Float32Array,
): number[] {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (!select || select[i]) n++;
  if (n === 0) return qs.map(() => Number.NaN);
  const buf = new Float32Array(n);
  let k = 0;
  for (let i = 0; i < values.length; i++) if (!select || select[i]) buf[k++] = values[i];
  buf.sort();
  return qs.map((q) => {
    const pos = q * (n - 1);
    const a = Math.floor(pos);
    const b = Math.min(n - 1, a + 1);
    return buf[a] + (buf[b] - buf[a]) * (pos - a);
  });
}

/** Value at quantile q (0..1) of the selected voxels, by linear interpolation between order statistics. */
export function quantile(values: Float32Array, q: number, select?: Uint8Array | Float32Array): number {
  return quantiles(values, [q], select)[0];
}
