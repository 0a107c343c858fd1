import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listSubjects, loadSlicePairs } from './dataset';
import { huToUnit } from './normalize';
import { readPng, writePng } from './png';

describe('PNG pairs', () => {
  it('reads 8- and 16-bit grayscale PNGs written by scikit-image with their exact values', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-png-'));
    execFileSync('/usr/bin/python3', [
      '-c',
      `import numpy as np, skimage.io as io, sys
d = sys.argv[1]
y, x = np.mgrid[0:9, 0:13]
io.imsave(d + '/a16.png', (x * 4000 + y * 7).astype(np.uint16), check_contrast=False)
io.imsave(d + '/a8.png', (x * 19 + y).astype(np.uint8), check_contrast=False)`,
      dir,
    ]);
    const a16 = await readPng(join(dir, 'a16.png'));
    expect(a16.bitDepth).toBe(16);
    expect(a16.volume.dims).toEqual([13, 9, 1]);
    expect(a16.volume.data[5 + 13 * 4]).toBe(5 * 4000 + 4 * 7);
    const a8 = await readPng(join(dir, 'a8.png'));
    expect(a8.bitDepth).toBe(8);
    expect(a8.volume.data[12 + 13 * 8]).toBe(12 * 19 + 8);
    await writeFile(join(dir, 'bad.png'), 'nope');
    await expect(readPng(join(dir, 'bad.png'))).rejects.toThrow(/bad\.png: not a valid PNG/);
  });

  it('loads a 2D PNG-pair dataset with the CT stored as HU + 1024', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-pngds-'));
    const sub = join(dir, 'case-1');
    await mkdir(sub);
    const n = 24 * 24;
    const ct = Float32Array.from({ length: n }, (_, i) => (i % 24 > 4 && i % 24 < 20 ? 1024 + 40 : 0));
    const mr = Float32Array.from({ length: n }, (_, i) => (i % 24 > 4 && i % 24 < 20 ? 180 : 3));
    await writePng(join(sub, 'ct.png'), ct, 24, 24, 16);
    await writePng(join(sub, 'mr.png'), mr, 24, 24, 8);
    const [entry] = await listSubjects(dir);
    expect(entry.targetPath.endsWith('ct.png')).toBe(true);
    const [pair] = await loadSlicePairs(entry, { size: 24 });
    expect(pair.target[10]).toBeCloseTo(huToUnit(Float32Array.of(40))[0], 6);
    expect(pair.target[0]).toBe(-1);
    expect(pair.mask[10]).toBe(1);
  });
});
