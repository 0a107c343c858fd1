import { readFile, writeFile } from 'node:fs/promises';
import { PNG } from 'pngjs';
import { ImagingError } from './errors';
import { diagonalAffine, type Volume } from './volume';

/** A grayscale PNG's stored values (0..255 or 0..65535) as a one-slice volume, and its bit depth. */
export async function readPng(path: string): Promise<{ volume: Volume; bitDepth: 8 | 16 }> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`,
      path,
    );
  }
  let png: PNG;
  try {
    png = PNG.sync.read(raw, { skipRescale: true });
  } catch (err) {
    throw new ImagingError('CORRUPT_FILE', `${path}: not a valid PNG (${(err as Error).message})`, path);
  }
  const depth = (png as unknown as { depth: number }).depth;
  if (depth !== 8 && depth !== 16)
    throw new ImagingError(
      'UNSUPPORTED_FORMAT',
      `${path}: ${depth}-bit PNG; 8- and 16-bit are supported`,
      path,
    );
  const n = png.width * png.height;
  const src = png.data as unknown as ArrayLike<number>;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = src[4 * i]; // grey is replicated into R, G, B
  return {
    volume: { data, dims: [png.width, png.height, 1], spacing: [1, 1, 1], affine: diagonalAffine([1, 1, 1]) },
    bitDepth: depth,
  };
}

/** Writes stored values (rounded and clamped to the bit depth's range) as a grayscale PNG. */
export async function writePng(
  path: string,
  data: Float32Array,
  width: number,
  height: number,
  bitDepth: 8 | 16 = 16,
): Promise<void> {
  await writeFile(path, encodePng(data, width, height, bitDepth));
}

/** A grayscale PNG of stored values (rounded and clamped to the bit depth's range), in memory. */
export function encodePng(data: Float32Array, width: number, height: number, bitDepth: 8 | 16 = 16): Buffer {
  if (data.length !== width * height)
    throw new ImagingError('INVALID_ARGUMENT', `png: ${data.length} values for ${width}x${height}`);
  const max = bitDepth === 16 ? 65535 : 255;
  const png = new PNG({ width, height, bitDepth, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  const out = bitDepth === 16 ? new Uint16Array(width * height) : Buffer.alloc(width * height);
  for (let i = 0; i < out.length; i++) out[i] = Math.max(0, Math.min(max, Math.round(data[i])));
  (png as unknown as { data: Uint16Array | Buffer }).data = out;
  return PNG.sync.write(png, { bitDepth, colorType: 0, inputColorType: 0, inputHasAlpha: false });
}

/**
 * HU from a CT stored in PNG: 16-bit files store HU + 1024 (the common convention); 8-bit files
 * map 0..255 linearly onto [-1024, 3000].
 */
export function pngToHu(stored: Float32Array, bitDepth: 8 | 16): Float32Array {
  return Float32Array.from(stored, (v) => (bitDepth === 16 ? v - 1024 : (v / 255) * 4024 - 1024));
}
