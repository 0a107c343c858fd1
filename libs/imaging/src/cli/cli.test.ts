import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeNifti, readNifti, writeNifti } from '../nifti';
import { findModality, readModality } from '../subject-files';
import type { Modality } from '../task';
import { petSuvFactor } from '../task-subjects';
import { main as dataMain } from './data';
import { main as metricsMain } from './metrics';
import { main as phantomsMain } from './phantoms';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
  return { out, err };
}

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe('imaging CLIs', () => {
  it('writes phantoms, checks them clean, then reports each planted problem and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-cli-'));
    const io = capture();
    await phantomsMain([
      '--out',
      dir,
      '--subjects',
      '3',
      '--size',
      '32',
      '--slices',
      '4',
      '--seed',
      '9',
      '--profile',
      'site-a',
    ]);
    expect(process.exitCode).toBe(0);
    await dataMain(['check', dir]);
    expect(process.exitCode).toBe(0);
    expect(io.out.join('')).toMatch(/3 subjects in .*\n[\s\S]*no problems found/);
    // Plant problems: a missing CT, a normalized CT, a CT of another shape.
    const ids = ['site-a-9-000', 'site-a-9-001', 'site-a-9-002'];
    await rm(join(dir, ids[0], 'ct.nii.gz'));
    const ct1 = await readNifti(join(dir, ids[1], 'ct.nii.gz'));
    await writeFile(
      join(dir, ids[1], 'ct.nii'),
      encodeNifti({ ...ct1, data: ct1.data.map((v) => v / 3000) }),
    );
    await rm(join(dir, ids[1], 'ct.nii.gz'));
    const ct2 = await readNifti(join(dir, ids[2], 'ct.nii.gz'));
    await writeFile(
      join(dir, ids[2], 'ct.nii'),
      encodeNifti({ ...ct2, dims: [32, 32, 2], data: ct2.data.subarray(0, 32 * 32 * 2) }),
    );
    await rm(join(dir, ids[2], 'ct.nii.gz'));
    io.out.length = 0;
    await dataMain(['check', dir, '--json']);
    expect(process.exitCode).toBe(1);
    const report = JSON.parse(io.out.join(''));
    const problems = Object.fromEntries(
      report.subjects.map((s: { id: string; problems: string[] }) => [s.id, s.problems.join('; ')]),
    );
    expect(problems[ids[0]]).toMatch(/missing ct image/);
    expect(problems[ids[1]]).toMatch(/normalized, not Hounsfield units/);
    expect(problems[ids[2]]).toBe(
      `${ids[2]}/ct.nii: shape 32x32x2 differs from ${ids[2]}/mr.nii.gz (32x32x4)`,
    );
  });

  it('check exits 1 naming the file and problem of a CT with an infinite voxel, and of an empty folder', async () => {
    // Arrange
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-cli-'));
    const io = capture();
    await phantomsMain(['--out', dir, '--subjects', '2', '--size', '16', '--slices', '3', '--seed', '4']);
    const ct = join(dir, 'site-a-4-001', 'ct.nii.gz');
    const vol = await readNifti(ct);
    vol.data[40] = Infinity;
    await writeNifti(ct, vol, { datatype: 'float32' });
    io.out.length = 0;
    // Act
    await dataMain(['check', dir]);
    // Assert
    expect(process.exitCode).toBe(1);
    const text = io.out.join('');
    expect(text).toContain('problem: site-a-4-001/ct.nii.gz: 1 non-finite voxel (1 +Infinity)\n');
    expect(text).toMatch(/\n1 problem\(s\) found\n$/);
    const empty = await mkdtemp(join(tmpdir(), 'fedsynth-cli-'));
    io.out.length = 0;
    await dataMain(['check', empty]);
    expect(process.exitCode).toBe(1);
    expect(io.out.join('')).toMatch(
      /0 subjects in .*\nno subjects found \(expected <subject>\/mr\.nii\.gz and ct\.nii\.gz\)/,
    );
  });

  it('prints metrics as one JSON object and names bad flags with exit code 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-cli-'));
    const io = capture();
    await phantomsMain(['--out', dir, '--subjects', '1', '--size', '32', '--slices', '8']);
    const ct = join(dir, 'site-a-1-000', 'ct.nii.gz');
    await metricsMain(['--pred', ct, '--ref', ct]);
    expect(process.exitCode).toBe(0);
    const m = JSON.parse(io.out.at(-1)!);
    expect(m.mae).toBe(0);
    expect(m.ssim).toBeCloseTo(1, 10);
    await metricsMain(['--pred', ct]);
    expect(process.exitCode).toBe(2);
    expect(io.err.join('')).toMatch(/--ref is required/);
    await phantomsMain(['--out', dir, '--size', 'big']);
    expect(process.exitCode).toBe(2);
    expect(io.err.join('')).toMatch(/--size: "big" must be an integer/);
  });

  it('writes the chosen modalities as DICOM series that read back as the NIfTI phantom, PET with its dose', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fedsynth-cli-dicom-'));
    const io = capture();
    const modalities: Modality[] = ['t1', 't2', 'flair', 'pet', 'ct'];
    const args = [
      '--subjects',
      '1',
      '--size',
      '16',
      '--slices',
      '3',
      '--seed',
      '7',
      '--modalities',
      modalities.join(','),
    ];
    await phantomsMain(['--out', join(root, 'nifti'), ...args]);
    expect(process.exitCode, io.err.join('')).toBe(0);
    await phantomsMain(['--out', join(root, 'dicom'), ...args, '--format', 'dicom']);
    expect(process.exitCode, io.err.join('')).toBe(0);
    expect(JSON.parse(io.out.at(-1)!)).toMatchObject({ subjects: 1, modalities, format: 'dicom' });
    const id = 'site-a-7-000';
    const niftiDir = join(root, 'nifti', id);
    const dicomDir = join(root, 'dicom', id);
    await access(join(dicomDir, 'mask.nii.gz'));
    const descriptions: Record<string, string> = {
      t1: 'T1w SE',
      t2: 'T2w SE',
      flair: 'FLAIR IR',
      pet: 'PET FDG',
      ct: 'CT',
    };
    for (const m of modalities) {
      const found = await findModality(dicomDir, m);
      expect(found, m).toMatchObject({
        format: 'dicom',
        path: join(dicomDir, m),
        description: descriptions[m],
      });
      const [vol, ref] = await Promise.all([readModality(found!), readNifti(join(niftiDir, `${m}.nii.gz`))]);
      expect(vol.dims).toEqual(ref.dims);
      for (let i = 0; i < 16; i++) expect(vol.affine[i], `${m} affine[${i}]`).toBeCloseTo(ref.affine[i], 4);
      // The writer's int16 steps: 1 HU for CT, the range over 65534 for MR, max |value| / 32767 for PET.
      let lo = Number.POSITIVE_INFINITY;
      let hi = Number.NEGATIVE_INFINITY;
      for (const x of ref.data) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      const step = m === 'ct' ? 0 : m === 'pet' ? Math.max(-lo, hi) / 32767 : (hi - lo) / 65534;
      const tol = step / 2 + 1e-6 * Math.max(-lo, hi);
      let worst = 0;
      for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(vol.data[i] - ref.data[i]));
      expect(worst, m).toBeLessThanOrEqual(tol);
    }
    const fromHeader = await petSuvFactor((await findModality(dicomDir, 'pet'))!);
    const fromSidecar = await petSuvFactor((await findModality(niftiDir, 'pet'))!);
    expect(Math.abs(fromHeader / fromSidecar - 1)).toBeLessThan(1e-6);

    // Bad lists and formats are named.
    for (const [flag, value, message] of [
      ['--modalities', 't1,dwi', '--modalities: "dwi" is not a modality; known: mr, t1, t2, flair, pet, ct'],
      ['--modalities', 't1,T1', '--modalities: t1 is listed twice'],
      ['--modalities', ',', '--modalities: list one or more of mr, t1, t2, flair, pet, ct'],
      ['--format', 'png', '--format: "png" must be nifti or dicom'],
    ]) {
      io.err.length = 0;
      await phantomsMain(['--out', join(root, 'bad'), flag, value]);
      expect(process.exitCode).toBe(2);
      expect(io.err.join('')).toContain(message);
    }
  });
});
