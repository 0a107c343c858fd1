import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { augmentPair } from './augment';
import { computeBodyMask } from './body-mask';
import { listSubjects, loadSlicePairs, scanSubjects, splitSubjects } from './dataset';
import { ImagingError } from './errors';
import { readNifti, writeNifti } from './nifti';
import { huToUnit, normalizeMr, unitToHu } from './normalize';
import { writePhantomDataset } from './phantom';
import { mulberry32 } from './rng';

describe('normalization', () => {
  it('maps HU to [-1, 1] and back exactly on [-1024, 3000]', () => {
    const hu = Float32Array.from([-2000, -1024, -1000, 0, 40, 1200, 3000, 5000]);
    const back = unitToHu(huToUnit(hu));
    expect(Array.from(back).map((v) => Math.round(v * 1000) / 1000)).toEqual([
      -1024, -1024, -1000, 0, 40, 1200, 3000, 3000,
    ]);
    expect(huToUnit(Float32Array.of(-1024, 3000))).toEqual(Float32Array.of(-1, 1));
  });

  it('normalizes MRI per volume by robust percentiles inside the mask', () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i);
    const mask = Uint8Array.from({ length: 1000 }, (_, i) => (i >= 500 ? 1 : 0));
    const { data: out, params } = normalizeMr(data, mask);
    expect(params.hi).toBeCloseTo(500 + 0.995 * 499, 3);
    expect(out[999]).toBe(1);
    expect(Math.min(...out)).toBe(-1);
  });
});

describe('body mask', () => {
  it('keeps the largest component and fills holes', () => {
    const dims: [number, number, number] = [20, 20, 3];
    const data = new Float32Array(20 * 20 * 3).fill(-1000);
    for (let z = 0; z < 3; z++) {
      for (let y = 3; y < 17; y++) for (let x = 3; x < 17; x++) data[z * 400 + y * 20 + x] = 40;
      data[z * 400 + 10 * 20 + 10] = -1000; // a hole (internal air)
      data[z * 400 + 0 * 20 + 0] = 40; // a speck outside
    }
    const m = computeBodyMask(data, dims, -500);
    expect(m[10 * 20 + 10]).toBe(1);
    expect(m[0]).toBe(0);
    expect(m[3 * 20 + 3]).toBe(1);
    expect(m[2 * 20 + 3]).toBe(0);
  });
});

describe('datasets', () => {
  it('finds subject folders that are symbolic links (a site pointing at an existing archive)', async () => {
    const archive = await mkdtemp(join(tmpdir(), 'fedsynth-archive-'));
    const [id] = await writePhantomDataset({
      out: archive,
      subjects: 1,
      seed: 8,
      profile: 'site-a',
      size: 16,
      slices: 4,
    });
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-linked-'));
    await symlink(join(archive, id), join(dir, 'patient-7'));
    const subjects = await listSubjects(dir);
    expect(subjects.map((s) => s.id)).toEqual(['patient-7']);
    expect(subjects[0].sourcePath).toBe(join(dir, 'patient-7', 'mr.nii.gz'));
  });

  it('lists SynthRAD subjects, reports incomplete ones, splits deterministically and slices to the model size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-ds-'));
    const ids = await writePhantomDataset({
      out: dir,
      subjects: 4,
      seed: 3,
      profile: 'site-c',
      size: 48,
      slices: 10,
    });
    await mkdir(join(dir, 'broken'));
    await writeFile(join(dir, 'broken', 'mr.nii.gz'), '');
    const scan = await scanSubjects(dir);
    expect(scan.subjects.map((s) => s.id)).toEqual(ids);
    expect(scan.incomplete).toEqual([{ id: 'broken', missing: ['ct'] }]);
    const split = splitSubjects(ids, 0.25, 1);
    expect(split.val).toHaveLength(1);
    expect(splitSubjects([...ids].reverse(), 0.25, 1).val).toEqual(split.val);
    expect([...split.train, ...split.val].sort()).toEqual([...ids].sort());
    const [first] = await listSubjects(dir);
    const pairs = await loadSlicePairs(first, { size: 32, minBodyFraction: 0.2 });
    expect(pairs.length).toBeGreaterThan(0);
    expect(pairs.length).toBeLessThanOrEqual(10);
    for (const p of pairs) {
      expect(p.source.length).toBe(32 * 32);
      expect(Math.max(...p.source)).toBeLessThanOrEqual(1);
      expect(Math.min(...p.target)).toBeGreaterThanOrEqual(-1);
      const body = p.mask.reduce((a, b) => a + b, 0);
      expect(body / (32 * 32)).toBeGreaterThanOrEqual(0.15);
    }
    await rm(join(first.sourcePath));
    await expect(loadSlicePairs(first, { size: 32 })).rejects.toThrow(/cannot be read/);
  });

  it('refuses a subject with NaN or infinite voxels, naming the file, before training can use it', async () => {
    // Arrange
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-ds-'));
    const [id] = await writePhantomDataset({
      out: dir,
      subjects: 1,
      seed: 4,
      profile: 'site-a',
      size: 16,
      slices: 3,
    });
    const [entry] = await listSubjects(dir);
    const ct = await readNifti(entry.targetPath);
    const clean = Float32Array.from(ct.data);
    // Act + Assert
    for (const [bad, what] of [
      [Infinity, '1 +Infinity'],
      [-Infinity, '1 -Infinity'],
      [Number.NaN, '1 NaN'],
    ] as const) {
      const data = Float32Array.from(clean);
      data[37] = bad;
      await writeNifti(entry.targetPath, { ...ct, data }, { datatype: 'float32' });
      const err = await loadSlicePairs(entry, { size: 16 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImagingError);
      expect(err).toMatchObject({ code: 'NON_FINITE_VOXELS', file: entry.targetPath });
      expect((err as Error).message).toContain(`${join(id, 'ct.nii.gz')}: 1 non-finite voxel (${what})`);
    }
    await writeNifti(entry.targetPath, { ...ct, data: clean }, { datatype: 'float32' });
    const mr = await readNifti(entry.sourcePath);
    await writeNifti(entry.sourcePath, { ...mr, data: mr.data.map((v, i) => (i % 100 ? v : -Infinity)) });
    await expect(loadSlicePairs(entry, { size: 16 })).rejects.toThrow(
      `${entry.sourcePath}: 8 non-finite voxels (8 -Infinity)`,
    );
  });

  it('augments reproducibly, moving source, target and mask together', () => {
    const size = 16;
    const source = new Float32Array(size * size).fill(-1);
    const target = new Float32Array(size * size).fill(-1);
    const mask = new Uint8Array(size * size);
    for (let y = 4; y < 12; y++)
      for (let x = 2; x < 7; x++) {
        source[y * size + x] = 0.5;
        target[y * size + x] = 0.2;
        mask[y * size + x] = 1;
      }
    const pair = { subjectId: 's', sliceIndex: 0, size, source, target, mask };
    const a = augmentPair(pair, mulberry32(9), {
      flip: 1,
      rotateDeg: 0,
      scale: 0,
      intensityScale: 0,
      intensityShift: 0,
    });
    // A pure left-right flip moves the block to the other side.
    expect(a.mask[8 * size + (size - 1 - 3)]).toBe(1);
    expect(a.mask[8 * size + 3]).toBe(0);
    expect(a.target[8 * size + (size - 1 - 3)]).toBeCloseTo(0.2, 5);
    const b1 = augmentPair(pair, mulberry32(4));
    const b2 = augmentPair(pair, mulberry32(4));
    expect(Array.from(b1.source)).toEqual(Array.from(b2.source));
  });

  it('adds source noise up to its largest standard deviation, and at times a coarser resolution', () => {
    const size = 32;
    const still = {
      flip: 0,
      rotateDeg: 0,
      scale: 0,
      intensityScale: 0,
      intensityShift: 0,
      biasField: 0,
      gamma: 0,
    };
    // A one-pixel checkerboard of +-0.5: any coarsening of at least 2 pixels averages it towards 0.
    const source = Float32Array.from({ length: size * size }, (_, i) =>
      ((i % size) + Math.floor(i / size)) % 2 ? 0.5 : -0.5,
    );
    const pair = {
      subjectId: 's',
      sliceIndex: 0,
      size,
      source,
      target: new Float32Array(size * size),
      mask: new Uint8Array(size * size),
    };
    const rms = (a: Float32Array, b: Float32Array) =>
      Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.length);
    const plain = augmentPair(pair, mulberry32(3), { ...still, noise: 0, lowRes: 0 });
    expect(rms(plain.source, source)).toBeLessThan(1e-6);
    for (let seed = 1; seed <= 5; seed++) {
      const noisy = augmentPair(pair, mulberry32(seed), { ...still, noise: 0.1, lowRes: 0 });
      const r = rms(noisy.source, source);
      expect(r).toBeGreaterThan(0);
      expect(r).toBeLessThan(0.1 * 1.1);
    }
    const coarse = augmentPair(pair, mulberry32(3), { ...still, noise: 0, lowRes: 1, lowResFactor: 4 });
    // Each checkerboard pixel moved towards 0 (a 1-pixel pattern cannot survive cells of 1.5 px and more
    // unchanged): the mean absolute value drops well below 0.5.
    const meanAbs = coarse.source.reduce((s, v) => s + Math.abs(v), 0) / coarse.source.length;
    expect(meanAbs).toBeLessThan(0.4);
  });
});
