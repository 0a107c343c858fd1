/**
 * An image as a scanner of coarser resolution would have taken it: each channel is averaged over
 * cells of about `factor` x `factor` pixels (the area each coarse voxel covers), then brought back
 * to `size` x `size` by bilinear interpolation between the cell centres. Interleaved channels, as
 * slice pairs keep them. A factor of 1 or less returns a copy.
 */
export function lowerResolution(
  img: Float32Array,
  size: number,
  channels: number,
  factor: number,
): Float32Array {
  if (img.length !== size * size * channels)
    throw new Error(
      `image has ${img.length} values; ${size}x${size}x${channels} needs ${size * size * channels}`,
    );
  if (!(factor > 1)) return Float32Array.from(img);
  const small = Math.max(2, Math.round(size / factor));
  const edges = Array.from({ length: small + 1 }, (_, i) => Math.round((i * size) / small));
  const coarse = new Float32Array(small * small * channels);
  for (let j = 0; j < small; j++)
    for (let i = 0; i < small; i++)
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let y = edges[j]; y < edges[j + 1]; y++)
          for (let x = edges[i]; x < edges[i + 1]; x++) sum += img[(y * size + x) * channels + c];
        const n = (edges[j + 1] - edges[j]) * (edges[i + 1] - edges[i]);
        coarse[(j * small + i) * channels + c] = sum / n;
      }
  const out = new Float32Array(img.length);
  const at = (i: number, j: number, c: number) => coarse[(j * small + i) * channels + c];
  const coord = (x: number) => Math.min(small - 1, Math.max(0, ((x + 0.5) * small) / size - 0.5));
  for (let y = 0; y < size; y++) {
    const v = coord(y);
    const j0 = Math.floor(v);
    const j1 = Math.min(small - 1, j0 + 1);
    const tv = v - j0;
    for (let x = 0; x < size; x++) {
      const u = coord(x);
      const i0 = Math.floor(u);
      const i1 = Math.min(small - 1, i0 + 1);
      const tu = u - i0;
      for (let c = 0; c < channels; c++)
        out[(y * size + x) * channels + c] =
          (at(i0, j0, c) * (1 - tu) + at(i1, j0, c) * tu) * (1 - tv) +
          (at(i0, j1, c) * (1 - tu) + at(i1, j1, c) * tu) * tv;
    }
  }
  return out;
}
