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

/** A 3x5 pixel font for the digits, '-' and '.', rows top to bottom, 3 bits a row. */
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [7, 1, 7, 4, 7],
  '3': [7, 1, 7, 1, 7],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7],
  '6': [7, 4, 7, 5, 7],
  '7': [7, 1, 1, 1, 1],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 7],
  '-': [0, 0, 7, 0, 0],
  '.': [0, 0, 0, 0, 2],
};

/** Draws `text` (digits, '-', '.') in black at (x, y), each font pixel `px` pixels wide. */
function drawText(
  img: { data: Float32Array; width: number; height: number },
  text: string,
  x: number,
  y: number,
  px: number,
): void {
  let cx = x;
  for (const ch of text) {
    const g = GLYPHS[ch];
    if (!g) throw new RangeError(`no glyph for "${ch}"`);
    for (let r = 0; r < 5; r++)
      for (let c = 0; c < 3; c++)
        if ((g[r] >> (2 - c)) & 1)
          for (let dy = 0; dy < px; dy++)
            for (let dx = 0; dx < px; dx++) {
              const xx = cx + c * px + dx;
              const yy = y + r * px + dy;
              if (xx >= 0 && yy >= 0 && xx < img.width && yy < img.height) img.data[yy * img.width + xx] = 0;
            }
    cx += 4 * px;
  }
}

/**
 * A strip with a grey-scale bar on its right: black at `lo`, white at `hi` (the window the panels
 * were drawn in), labelled at both ends and the middle (e.g. -1000, 250, 1500 HU), so a reader can
 * tell values from the picture.
 */
export function withColourBar(
  strip: { data: Float32Array; width: number; height: number },
  lo: number,
  hi: number,
  opts: { gap?: number; barWidth?: number; digits?: number } = {},
): { data: Float32Array; width: number; height: number } {
  const gap = opts.gap ?? 8;
  const bar = opts.barWidth ?? 16;
  const px = Math.max(1, Math.floor(strip.height / 120));
  const label = (v: number) => v.toFixed(opts.digits ?? 0);
  const labelWidth = Math.max(...[lo, (lo + hi) / 2, hi].map((v) => label(v).length)) * 4 * px + 4;
  const width = strip.width + gap + bar + 4 + labelWidth;
  const out = { data: new Float32Array(width * strip.height).fill(255), width, height: strip.height };
  for (let y = 0; y < strip.height; y++) {
    out.data.set(strip.data.subarray(y * strip.width, (y + 1) * strip.width), y * width);
    const level = (1 - y / Math.max(1, strip.height - 1)) * 255; // top: hi (white), bottom: lo (black)
    for (let x = 0; x < bar; x++) out.data[y * width + strip.width + gap + x] = level;
  }
  const tx = strip.width + gap + bar + 4;
  const h = 5 * px;
  drawText(out, label(hi), tx, 0, px);
  drawText(out, label((lo + hi) / 2), tx, Math.round((strip.height - h) / 2), px);
  drawText(out, label(lo), tx, strip.height - h, px);
  return out;
}
