import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkDataset, type DataIssue, dataProblemLines, type SubjectReport } from './data-check';
import { encodeNifti, readNifti, writeNifti } from './nifti';
import { SITE_PROFILES, writePhantomDataset } from './phantom';
import { writePng } from './png';
import type { Volume } from './volume';

/** A clean phantom dataset: `subjects` subjects of 16 x 16 x 3 voxels. */
async function phantoms(subjects: number, seed = 5): Promise<{ dir: string; ids: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'fedsynth-check-'));
  const ids = await writePhantomDataset({ out: dir, subjects, seed, profile: 'site-b', size: 16, slices: 3 });
  return { dir, ids };
}

/** Rewrites one file of a subject (float32, so that non-finite values survive). */
async function rewrite(dir: string, file: string, change: (v: Volume) => Volume): Promise<void> {
  const path = join(dir, file);
  await writeNifti(path, change(await readNifti(path)), { datatype: 'float32' });
}

/** Writes `vol` as gzipped NIfTI after patching its header bytes. */
async function writePatched(path: string, vol: Volume, patch: (header: Buffer) => void): Promise<void> {
  const raw = encodeNifti(vol, { datatype: 'float32' });
  patch(raw);
  await writeFile(path, gzipSync(raw));
}

const withVoxels = (v: Volume, set: [number, number][]): Volume => {
  const data = Float32Array.from(v.data);
  for (const [i, x] of set) data[i] = x;
  return { ...v, data };
};

/** The volume with some affine entries (row-major index -> value) replaced. */
const withAffine = (v: Volume, entries: Record<number, number>): Volume => {
  const affine = Float64Array.from(v.affine);
  for (const [i, x] of Object.entries(entries)) affine[Number(i)] = x;
  return { ...v, affine };
};

describe('checkDataset', () => {
  it('finds no problem in clean phantoms of every site profile and anatomy', async () => {
    // Arrange
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-check-'));
    for (const profile of Object.keys(SITE_PROFILES))
      for (const anatomy of ['head', 'pelvis'] as const)
        await writePhantomDataset({
          out: join(dir, `${profile}-${anatomy}`),
          subjects: 1,
          seed: 2,
          profile,
          size: 24,
          slices: 4,
          anatomy,
        });
    // Act
    const reports = await Promise.all(
      Object.keys(SITE_PROFILES).flatMap((p) =>
        ['head', 'pelvis'].map((a) => checkDataset(join(dir, `${p}-${a}`))),
      ),
    );
    // Assert
    for (const r of reports) {
      expect(r.subjects).toHaveLength(1);
      expect(r.subjects[0].issues).toEqual([]);
      expect(r.problemCount).toBe(0);
    }
  });

  it('finds no problem in a 2D PNG-pair dataset', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-check-png-'));
    await mkdir(join(dir, 'case-1'));
    const n = 24 * 24;
    const body = (i: number) => i % 24 > 4 && i % 24 < 20;
    await writePng(
      join(dir, 'case-1', 'ct.png'),
      Float32Array.from({ length: n }, (_, i) => (body(i) ? 1064 : 0)),
      24,
      24,
      16,
    );
    await writePng(
      join(dir, 'case-1', 'mr.png'),
      Float32Array.from({ length: n }, (_, i) => (body(i) ? 180 : 3)),
      24,
      24,
      8,
    );
    const r = await checkDataset(dir);
    expect(r.problemCount).toBe(0);
    expect(r.subjects[0].targetRange).toEqual([-1024, 40]);
  });

  describe('on planted problems', () => {
    let dir: string;
    let ids: string[];
    let bySubject: Record<string, SubjectReport>;
    let problemCount: number;
    const issues = (k: number): DataIssue[] => bySubject[ids[k]].issues;

    beforeAll(async () => {
      ({ dir, ids } = await phantoms(11));
      const f = (k: number, name: string) => `${ids[k]}/${name}.nii.gz`;
      // 0: one +Infinity CT voxel. 1: two -Infinity and one NaN MR voxels.
      await rewrite(dir, f(0, 'ct'), (v) => withVoxels(v, [[100, Infinity]]));
      await rewrite(dir, f(1, 'mr'), (v) =>
        withVoxels(v, [
          [3, -Infinity],
          [500, -Infinity],
          [7, Number.NaN],
        ]),
      );
      // 2: a mask of another shape. 3: an MR moved 5 mm along x (its CT and mask stay).
      await rewrite(dir, f(2, 'mask'), (v) => ({ ...v, dims: [16, 16, 2], data: v.data.subarray(0, 512) }));
      await rewrite(dir, f(3, 'mr'), (v) => withAffine(v, { 3: v.affine[3] + 5 }));
      // 4: a CT whose header says dim[3] = 0 (dim[] is int16[8] at byte 40; the file is gzipped).
      const ct4 = await readNifti(join(dir, f(4, 'ct')));
      await writePatched(join(dir, f(4, 'ct')), ct4, (h) => h.writeInt16LE(0, 40 + 2 * 3));
      // 5: an MR affine with a zero column. 6: with a NaN. 7: two voxel axes along the same line.
      await rewrite(dir, f(5, 'mr'), (v) => withAffine(v, { 5: 0 }));
      await rewrite(dir, f(6, 'mr'), (v) => withAffine(v, { 10: Number.NaN }));
      await rewrite(dir, f(7, 'mr'), (v) => withAffine(v, { 1: v.affine[0], 5: 0 }));
      // 8: a CT without sform whose pixdim[2] (float32 at byte 76 + 4 * 2) is -1.
      const ct8 = await readNifti(join(dir, f(8, 'ct')));
      await writePatched(join(dir, f(8, 'ct')), ct8, (h) => {
        h.writeInt16LE(0, 254);
        h.writeFloatLE(-1, 76 + 4 * 2);
      });
      // 9: the CT is missing. 10: untouched.
      await rm(join(dir, f(9, 'ct')));
      const report = await checkDataset(dir);
      bySubject = Object.fromEntries(report.subjects.map((s) => [s.id, s]));
      problemCount = report.problemCount;
    });

    it('counts +Infinity, -Infinity and NaN voxels per file', () => {
      expect(issues(0)).toEqual([
        {
          kind: 'non-finite',
          file: `${ids[0]}/ct.nii.gz`,
          message: '1 non-finite voxel (1 +Infinity)',
          nonFinite: { nan: 0, posInf: 1, negInf: 0 },
        },
      ]);
      expect(bySubject[ids[0]].problems).toEqual([`${ids[0]}/ct.nii.gz: 1 non-finite voxel (1 +Infinity)`]);
      expect(issues(1)).toEqual([
        {
          kind: 'non-finite',
          file: `${ids[1]}/mr.nii.gz`,
          message: '3 non-finite voxels (1 NaN, 2 -Infinity)',
          nonFinite: { nan: 1, posInf: 0, negInf: 2 },
        },
      ]);
    });

    it('names both files of a shape or geometry mismatch', () => {
      expect(issues(2)).toEqual([
        {
          kind: 'shape-mismatch',
          file: `${ids[2]}/mask.nii.gz`,
          otherFile: `${ids[2]}/mr.nii.gz`,
          message: `shape 16x16x2 differs from ${ids[2]}/mr.nii.gz (16x16x3)`,
        },
      ]);
      // The MR moved, so the CT and the mask each differ from it.
      expect(issues(3).map((i) => [i.kind, i.file, i.otherFile])).toEqual([
        ['geometry-mismatch', `${ids[3]}/ct.nii.gz`, `${ids[3]}/mr.nii.gz`],
        ['geometry-mismatch', `${ids[3]}/mask.nii.gz`, `${ids[3]}/mr.nii.gz`],
      ]);
      expect(bySubject[ids[3]].problems[0]).toBe(
        `${ids[3]}/ct.nii.gz: affine differs from ${ids[3]}/mr.nii.gz (same shape, different voxel-to-world geometry; largest entry difference 5)`,
      );
    });

    it('reports a zero dim as an unreadable file naming the dim, and checks the rest of the subject', () => {
      expect(issues(4)).toEqual([
        {
          kind: 'unreadable',
          file: `${ids[4]}/ct.nii.gz`,
          message: 'dim[3] is 0; with dim[0] = 3, dim[1..3] must each be at least 1',
        },
      ]);
      expect(bySubject[ids[4]].dims).toEqual([16, 16, 3]);
    });

    it('reports zero spacing, a non-finite affine and a non-invertible affine', () => {
      const mr = (k: number) => `${ids[k]}/mr.nii.gz`;
      expect(issues(5)[0]).toMatchObject({ kind: 'bad-spacing', file: mr(5) });
      expect(issues(5)[0].message).toMatch(
        /^voxel spacing is [\d.]+ x 0 x [\d.]+ mm: affine column 1 is zero/,
      );
      expect(issues(6)[0]).toEqual({
        kind: 'bad-affine',
        file: mr(6),
        message: 'affine has 1 non-finite entry (NaN)',
      });
      expect(issues(7)[0]).toMatchObject({ kind: 'bad-affine', file: mr(7) });
      expect(issues(7)[0].message).toMatch(/^affine is not invertible/);
      expect(issues(7).filter((i) => i.kind === 'bad-spacing')).toEqual([]);
    });

    it('reports a non-positive pixdim when the affine is built from it', () => {
      expect(issues(8)).toContainEqual({
        kind: 'bad-spacing',
        file: `${ids[8]}/ct.nii.gz`,
        message: 'voxel spacing pixdim[2] is -1; it must be positive and finite (read as 1 mm)',
      });
    });

    it('keeps reporting missing images, and nothing for the untouched subject', () => {
      expect(bySubject[ids[9]].problems).toEqual([
        `${ids[9]}/ct.nii.gz: missing ct image (looked for ct.nii.gz, ct.nii and ct.png)`,
      ]);
      expect(issues(10)).toEqual([]);
      const all = Object.values(bySubject).reduce((n, s) => n + s.problems.length, 0);
      expect(problemCount).toBe(all);
      expect(dataProblemLines({ dir, subjects: Object.values(bySubject), problemCount })).toHaveLength(all);
    });
  });
});
