/** Grey level (0..255) of a CT value in the window -1000..1500 HU, clamped. */
export function ctGrey(hu: number): number {
  return ((Math.max(-1000, Math.min(1500, hu)) + 1000) / 2500) * 255;
}

/** Grey levels (0..255) of any image, stretched from its minimum to its maximum. */
export function stretchGrey(img: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of img) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return Float32Array.from(img, (v) => ((v - lo) / (hi - lo || 1)) * 255);
}

/**
 * Axial slices (nx x ny each, x fastest, grey levels 0..255) side by side as one image with the
 * anterior side up (image rows run from high y to low y), each pixel repeated `scale` times and
 * `gap` white columns between panels: for strips such as MRI | synthetic CT | CT.
 */
export function sideBySide(
  panels: Float32Array[],
  nx: number,
  ny: number,
  opts: { scale?: number; gap?: number } = {},
): { data: Float32Array; width: number; height: number } {
  const scale = opts.scale ?? 1;
  const gap = opts.gap ?? 8;
  const w = nx * scale;
  const height = ny * scale;
  const width = panels.length * w + (panels.length - 1) * gap;
  const data = new Float32Array(width * height).fill(255);
  panels.forEach((img, k) => {
    if (img.length !== nx * ny) throw new RangeError(`panel ${k} has ${img.length} values, not ${nx}x${ny}`);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < w; x++)
        data[y * width + k * (w + gap) + x] =
          img[(ny - 1 - Math.floor(y / scale)) * nx + Math.floor(x / scale)];
  });
  return { data, width, height };
}
