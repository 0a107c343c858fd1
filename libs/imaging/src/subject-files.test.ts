import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readDicomSeries } from './dicom';
import { writeDicomSeries } from './dicom-write';
import { readNifti, writeNifti } from './nifti';
import { findModality, findSubjectDirs, readModality } from './subject-files';
import { diagonalAffine, type Volume } from './volume';

/** A small volume with an oblique, right-handed RAS affine (rotations about z and x). */
function obliqueVolume(
  dims: [number, number, number],
  f: (x: number, y: number, z: number) => number,
): Volume {
  const [nx, ny, nz] = dims;
  const data = new Float32Array(nx * ny * nz);
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) data[x + nx * (y + ny * z)] = f(x, y, z);
  const a = (15 * Math.PI) / 180;
  const b = (10 * Math.PI) / 180;
  const rz = [
    [Math.cos(a), -Math.sin(a), 0],
    [Math.sin(a), Math.cos(a), 0],
    [0, 0, 1],
  ];
  const rx = [
    [1, 0, 0],
    [0, Math.cos(b), -Math.sin(b)],
    [0, Math.sin(b), Math.cos(b)],
  ];
  const r = rz.map((row) => [0, 1, 2].map((c) => row.reduce((s, v, k) => s + v * rx[k][c], 0)));
  const spacing: [number, number, number] = [0.9, 1.1, 2.5];
  const origin = [-40, 30, 12];
  const affine = new Float64Array(16);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) affine[4 * i + j] = r[i][j] * spacing[j];
    affine[4 * i + 3] = origin[i];
  }
  affine[15] = 1;
  return { data, dims, spacing, affine };
}

/** World coordinates (mm) of a voxel. */
function world(v: Volume, i: number, j: number, k: number): number[] {
  return [0, 1, 2].map(
    (r) => v.affine[4 * r] * i + v.affine[4 * r + 1] * j + v.affine[4 * r + 2] * k + v.affine[4 * r + 3],
  );
}

/** The voxel of `v` at a world point (solving the 3x3 system by Cramer's rule). */
function voxelAt(v: Volume, p: number[]): number[] {
  const m = [0, 1, 2].map((r) => [0, 1, 2].map((c) => v.affine[4 * r + c]));
  const rhs = [0, 1, 2].map((r) => p[r] - v.affine[4 * r + 3]);
  const det3 = (a: number[][]) =>
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
    a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
    a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  const d = det3(m);
  return [0, 1, 2].map((c) => det3(m.map((row, r) => row.map((x, k) => (k === c ? rhs[r] : x)))) / d);
}

/** The largest |a[i] - b[offset + i]|. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>, offset = 0): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[offset + i]));
  return m;
}

const T1 = obliqueVolume(
  [7, 5, 4],
  (x, y, z) => 100 + 13.7 * x + 5.3 * y + 40.1 * z + 0.25 * Math.sin(x * y),
);
const nifti = (v: number): Volume => ({
  data: new Float32Array(8).fill(v),
  dims: [2, 2, 2],
  spacing: [1, 1, 1],
  affine: diagonalAffine([1, 1, 1]),
});

let root: string;
let data: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedsynth-subjects-'));
  data = join(root, 'data');
  const elsewhere = join(root, 'elsewhere');
  mkdirSync(data);
  mkdirSync(join(elsewhere, 'real02'), { recursive: true });
  mkdirSync(join(elsewhere, 'files'), { recursive: true });
  // sub01: a NIfTI under an alias in upper case.
  mkdirSync(join(data, 'sub01'));
  await writeNifti(join(data, 'sub01', 'T1W.nii.gz'), nifti(1));
  await writeNifti(join(data, 'sub01', 'ct.nii.gz'), nifti(2));
  // sub02: a symlinked subject folder holding a symlinked PET file.
  await writeNifti(join(elsewhere, 'files', 'pet_scan.nii'), nifti(3));
  symlinkSync(join(elsewhere, 'files', 'pet_scan.nii'), join(elsewhere, 'real02', 'PET.nii'));
  symlinkSync(join(elsewhere, 'real02'), join(data, 'sub02'));
  // sub03: a broken link; hidden folders and plain files are not subjects.
  symlinkSync(join(root, 'gone', 'sub03'), join(data, 'sub03'));
  mkdirSync(join(data, '.cache'));
  writeFileSync(join(data, 'notes.txt'), 'not a subject');
  // sub04: DICOM series two levels down, told apart by SeriesDescription.
  const sub04 = join(data, 'sub04');
  await writeDicomSeries(T1, join(sub04, 'study', 'ax_t1'), {
    modality: 'MR',
    seriesDescription: 'AX_T1_MPRAGE',
    patientId: 'sub04',
  });
  await writeDicomSeries(T1, join(sub04, 'study', 'flair'), {
    modality: 'MR',
    seriesDescription: 'T2 FLAIR AX',
    patientId: 'sub04',
  });
  await writeDicomSeries(T1, join(sub04, 'study', 't2'), {
    modality: 'MR',
    seriesDescription: 't2_tse_tra',
    patientId: 'sub04',
  });
  await writeDicomSeries(nifti(50), join(sub04, 'ct'), {
    modality: 'CT',
    seriesDescription: 'Head 1.0',
    patientId: 'sub04',
  });
  // sub05: two T1 series.
  await writeDicomSeries(T1, join(data, 'sub05', 'pre'), {
    modality: 'MR',
    seriesDescription: 'T1 pre',
    patientId: 'sub05',
  });
  await writeDicomSeries(T1, join(data, 'sub05', 'post'), {
    modality: 'MR',
    seriesDescription: 'T1 post Gd',
    patientId: 'sub05',
  });
  // sub06: a series three levels down is out of reach.
  await writeDicomSeries(T1, join(data, 'sub06', 'a', 'b', 'c'), {
    modality: 'MR',
    seriesDescription: 'T1',
    patientId: 'sub06',
  });
});

describe('findSubjectDirs', () => {
  it('follows symbolic links to folders, reports broken ones, and skips hidden entries and files', async () => {
    const { dirs, problems } = await findSubjectDirs(data);
    expect(dirs.map((d) => d.id)).toEqual(['sub01', 'sub02', 'sub04', 'sub05', 'sub06']);
    expect(dirs[1].path).toBe(join(data, 'sub02'));
    expect(problems).toHaveLength(1);
    expect(problems[0].id).toBe('sub03');
    expect(problems[0].problem).toContain(join(data, 'sub03'));
    expect(problems[0].problem).toContain(join(root, 'gone', 'sub03'));
    expect(problems[0].problem).toMatch(/does not exist/);
  });

  it('names an unreadable data folder', async () => {
    await expect(findSubjectDirs(join(root, 'nowhere'))).rejects.toThrow(
      /nowhere: cannot read the data folder/,
    );
  });
});

describe('findModality', () => {
  it('finds a NIfTI by an alias of the modality, case-insensitively', async () => {
    const t1 = await findModality(join(data, 'sub01'), 't1');
    expect(t1).toEqual({ format: 'nifti', path: join(data, 'sub01', 'T1W.nii.gz'), modality: 't1' });
    expect((await readModality(t1!)).data[0]).toBe(1);
    expect(await findModality(join(data, 'sub01'), 't2')).toBeUndefined();
    const custom = await findModality(join(data, 'sub01'), 'mr', { names: { mr: ['t1w'] } });
    expect(custom?.path).toBe(join(data, 'sub01', 'T1W.nii.gz'));
  });

  it('follows a symlinked modality file inside a symlinked subject folder', async () => {
    const pet = await findModality(join(data, 'sub02'), 'pet');
    expect(pet).toEqual({ format: 'nifti', path: join(data, 'sub02', 'PET.nii'), modality: 'pet' });
    expect((await readModality(pet!)).data[3]).toBe(3);
  });

  it('names a broken link where the modality file should be', async () => {
    const sub = join(root, 'broken-file');
    mkdirSync(sub);
    symlinkSync(join(root, 'gone', 'ct.nii.gz'), join(sub, 'ct.nii.gz'));
    await expect(findModality(sub, 'ct')).rejects.toThrow(
      /ct\.nii\.gz \(the ct image\) is a symbolic link to .*gone\/ct\.nii\.gz/,
    );
  });

  it('finds DICOM series by SeriesDescription in a subfolder and reads them back', async () => {
    const sub = join(data, 'sub04');
    const t1 = await findModality(sub, 't1');
    expect(t1).toMatchObject({
      format: 'dicom',
      path: join(sub, 'study', 'ax_t1'),
      description: 'AX_T1_MPRAGE',
    });
    expect((await findModality(sub, 'flair'))?.description).toBe('T2 FLAIR AX');
    expect((await findModality(sub, 't2'))?.description).toBe('t2_tse_tra');
    const ct = await findModality(sub, 'ct');
    expect(ct).toMatchObject({ format: 'dicom', path: join(sub, 'ct'), description: 'Head 1.0' });
    expect(await findModality(sub, 'pet')).toBeUndefined();
    // Three MR series: "mr" alone is ambiguous there.
    await expect(findModality(sub, 'mr')).rejects.toThrow(/3 DICOM series fit mr/);

    const v = await readModality(t1!);
    expect(v.dims).toEqual(T1.dims);
    for (let i = 0; i < 16; i++) expect(v.affine[i]).toBeCloseTo(T1.affine[i], 4);
    // MR floats are quantized to int16 over their range: error at most half a step.
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const x of T1.data) [lo, hi] = [Math.min(lo, x), Math.max(hi, x)];
    const halfStep = (hi - lo) / 65534 / 2;
    for (let i = 0; i < v.data.length; i++)
      expect(Math.abs(v.data[i] - T1.data[i])).toBeLessThanOrEqual(halfStep * 1.01);
    expect(Array.from((await readModality(ct!)).data)).toEqual(Array(8).fill(50));
  });

  it('names every candidate when several series fit, and a pattern chooses one', async () => {
    const sub = join(data, 'sub05');
    const err = await findModality(sub, 't1').catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/2 DICOM series fit t1/);
    expect(msg).toContain('"T1 pre" in pre');
    expect(msg).toContain('"T1 post Gd" in post');
    expect(msg).toMatch(/series\.t1/);
    expect((await findModality(sub, 't1', { series: { t1: /post/i } }))?.path).toBe(join(sub, 'post'));
    expect((await findModality(sub, 't1', { series: { t1: '^t1 pre$' } }))?.path).toBe(join(sub, 'pre'));
  });

  it('looks for DICOM two folder levels down, no deeper', async () => {
    expect(await findModality(join(data, 'sub06'), 't1')).toBeUndefined();
  });
});

describe('writeDicomSeries as read by pydicom and dcm2niix', () => {
  it('writes values, geometry and tags that independent readers agree on', async () => {
    const dir = join(root, 'oblique');
    await writeDicomSeries(T1, dir, { modality: 'MR', seriesDescription: 'oblique t1', patientId: 'P9' });
    const script = `
import json, sys, glob, pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut
out = []
for f in sorted(glob.glob(sys.argv[1] + '/*.dcm')):
    d = pydicom.dcmread(f)
    assert d.file_meta.TransferSyntaxUID == '1.2.840.10008.1.2.1'
    out.append({'n': int(d.InstanceNumber), 'mod': d.Modality, 'desc': d.SeriesDescription, 'pid': d.PatientID,
      'ipp': [float(v) for v in d.ImagePositionPatient], 'iop': [float(v) for v in d.ImageOrientationPatient],
      'ps': [float(v) for v in d.PixelSpacing], 'th': float(d.SliceThickness), 'rows': d.Rows, 'cols': d.Columns,
      'px': apply_modality_lut(d.pixel_array, d).astype(float).ravel().tolist()})
print(json.dumps(out))
`;
    const files = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' }));
    const [nx, ny, nz] = T1.dims;
    expect(files).toHaveLength(nz);
    const lps = (p: number[]) => [-p[0], -p[1], p[2]];
    const halfStep = (Math.max(...T1.data) - Math.min(...T1.data)) / 65534 / 2;
    for (const f of files) {
      const k = f.n - 1;
      expect([f.mod, f.desc, f.pid, f.rows, f.cols]).toEqual(['MR', 'oblique t1', 'P9', ny, nx]);
      expect(maxDiff(f.ipp, lps(world(T1, 0, 0, k)))).toBeLessThan(1e-4);
      const row = lps(world(T1, 1, 0, 0)).map((v, i) => v - lps(world(T1, 0, 0, 0))[i]);
      const col = lps(world(T1, 0, 1, 0)).map((v, i) => v - lps(world(T1, 0, 0, 0))[i]);
      expect(maxDiff(f.iop, [...row.map((v) => v / 0.9), ...col.map((v) => v / 1.1)])).toBeLessThan(1e-6);
      expect(f.ps[0]).toBeCloseTo(1.1, 6);
      expect(f.ps[1]).toBeCloseTo(0.9, 6);
      expect(f.th).toBeCloseTo(2.5, 6);
      expect(maxDiff(f.px, T1.data, k * nx * ny)).toBeLessThanOrEqual(halfStep * 1.01);
    }

    const out = join(root, 'oblique-nifti');
    mkdirSync(out);
    execFileSync('dcm2niix', ['-z', 'y', '-f', 't1', '-o', out, dir], { stdio: 'pipe' });
    const theirs = await readNifti(join(out, readdirSync(out).find((f) => f.endsWith('.nii.gz'))!));
    const ours = await readDicomSeries(dir);
    expect(theirs.data.length).toBe(ours.data.length);
    const [mx, my] = theirs.dims;
    for (let k = 0; k < nz; k++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          const v = voxelAt(theirs, world(ours, x, y, k));
          const [i, j, l] = v.map(Math.round);
          expect(maxDiff(v, [i, j, l])).toBeLessThan(1e-3);
          expect(theirs.data[i + mx * (j + my * l)]).toBeCloseTo(ours.data[x + nx * (y + ny * k)], 2);
        }
  });
});
