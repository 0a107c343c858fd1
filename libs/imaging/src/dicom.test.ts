import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listDicomSeries, readDicomSeries } from './dicom';
import { readNifti } from './nifti';
import type { Volume } from './volume';

// pydicom writes the series; dcm2niix converts it: two independent tools as oracles.
const WRITE = `
import json, sys, random, numpy as np, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid, CTImageStorage
from pydicom.encaps import encapsulate
root = sys.argv[1]
def rot(ax, deg):
    a = np.deg2rad(deg); c, s = np.cos(a), np.sin(a)
    return {'x': np.array([[1,0,0],[0,c,-s],[0,s,c]]), 'z': np.array([[c,-s,0],[s,c,0],[0,0,1]])}[ax]
R = rot('z', 15) @ rot('x', 10)
row, col = R[:, 0], R[:, 1]
normal = np.cross(row, col)
def write_series(folder, uid, nslices, rows, cols, spacing, thick, origin, slope, inter, syntax, names):
    expected = []
    order = list(range(nslices)); random.Random(7).shuffle(order)
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = syntax
        ds = FileDataset(None, {}, file_meta=meta, preamble=b'\\0' * 128)
        ds.is_little_endian = True
        ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = 'CT'; ds.PatientID = 'PHANTOM'; ds.StudyInstanceUID = '1.2.3.4'
        ds.SeriesInstanceUID = uid; ds.SeriesDescription = 'test ' + uid[-3:]; ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [spacing[0], spacing[1]]; ds.SliceThickness = thick
        ds.ImageOrientationPatient = [float(v) for v in list(row) + list(col)]
        ds.ImagePositionPatient = [float(v) for v in (np.array(origin) + k * thick * normal)]
        ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
        ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 1
        ds.RescaleSlope = slope; ds.RescaleIntercept = inter
        y, x = np.mgrid[0:rows, 0:cols]
        stored = ((x * 37 + y * 11 + k * 101) % 3000 + 10).astype(np.int16)
        if syntax == JPEGBaseline8Bit:
            ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0
            ds.PixelData = encapsulate([b'\\xff\\xd8\\xff\\xd9'])
        else:
            ds.PixelData = stored.tobytes()
        ds.save_as(f'{folder}/{names}{k:03d}.dcm', write_like_original=False)
    return
import os
a = os.path.join(root, 'series_a'); os.makedirs(a)
write_series(a, '1.2.826.0.1.3680043.8.498.101', 6, 10, 12, (0.8, 0.7), 2.5, (-40.0, -30.0, 15.0), 0.5, -1024.0, ExplicitVRLittleEndian, 'img')
mixed = os.path.join(root, 'mixed'); os.makedirs(mixed)
write_series(mixed, '1.2.826.0.1.3680043.8.498.101', 6, 10, 12, (0.8, 0.7), 2.5, (-40.0, -30.0, 15.0), 0.5, -1024.0, ExplicitVRLittleEndian, 'a')
write_series(mixed, '1.2.826.0.1.3680043.8.498.202', 3, 8, 8, (1.0, 1.0), 3.0, (0.0, 0.0, 0.0), 1.0, -1024.0, ImplicitVRLittleEndian, 'b')
open(os.path.join(mixed, 'README.txt'), 'w').write('not dicom')
j = os.path.join(root, 'jpeg'); os.makedirs(j)
write_series(j, '1.2.826.0.1.3680043.8.498.303', 2, 8, 8, (1.0, 1.0), 3.0, (0.0, 0.0, 0.0), 1.0, -1024.0, JPEGBaseline8Bit, 'j')
print('ok')
`;

let root: string;
let ours: Volume;
let dcm2niix: Volume;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedsynth-dicom-'));
  execFileSync('/usr/bin/python3', ['-c', WRITE, root], { encoding: 'utf8' });
  const out = join(root, 'nifti');
  execFileSync('mkdir', ['-p', out]);
  execFileSync('dcm2niix', ['-z', 'y', '-f', 'series_a', '-o', out, join(root, 'series_a')], {
    stdio: 'pipe',
  });
  const file = readdirSync(out).find((f) => f.endsWith('.nii.gz'))!;
  dcm2niix = await readNifti(join(out, file));
  ours = await readDicomSeries(join(root, 'series_a'));
});

function invert4(m: Float64Array): Float64Array {
  // Inverse of an affine [A t; 0 1]: [A^-1, -A^-1 t].
  const a = [0, 1, 2].map((r) => [0, 1, 2].map((c) => m[4 * r + c]));
  const det =
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
    a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
    a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  const inv = [
    [
      a[1][1] * a[2][2] - a[1][2] * a[2][1],
      a[0][2] * a[2][1] - a[0][1] * a[2][2],
      a[0][1] * a[1][2] - a[0][2] * a[1][1],
    ],
    [
      a[1][2] * a[2][0] - a[1][0] * a[2][2],
      a[0][0] * a[2][2] - a[0][2] * a[2][0],
      a[0][2] * a[1][0] - a[0][0] * a[1][2],
    ],
    [
      a[1][0] * a[2][1] - a[1][1] * a[2][0],
      a[0][1] * a[2][0] - a[0][0] * a[2][1],
      a[0][0] * a[1][1] - a[0][1] * a[1][0],
    ],
  ].map((r) => r.map((v) => v / det));
  const out = new Float64Array(16);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out[4 * r + c] = inv[r][c];
    out[4 * r + 3] = -(inv[r][0] * m[3] + inv[r][1] * m[7] + inv[r][2] * m[11]);
  }
  out[15] = 1;
  return out;
}

describe('DICOM series', () => {
  it('orders shuffled slices, applies the rescale to HU, and matches dcm2niix voxel for voxel in world space', () => {
    expect(ours.dims).toEqual([12, 10, 6]);
    expect(dcm2niix.data.length).toBe(ours.data.length);
    // Stored value (x*37 + y*11 + k*101) % 3000 + 10, slope 0.5, intercept -1024.
    const hu = (x: number, y: number, k: number) => (((x * 37 + y * 11 + k * 101) % 3000) + 10) * 0.5 - 1024;
    expect(ours.data[0]).toBe(hu(0, 0, 0));
    expect(ours.data[3 + 12 * (4 + 10 * 5)]).toBe(hu(3, 4, 5));
    const inv = invert4(dcm2niix.affine);
    const [nx, ny, nz] = ours.dims;
    const [mx, my] = dcm2niix.dims;
    for (let k = 0; k < nz; k++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          const w = [0, 1, 2].map(
            (r) =>
              ours.affine[4 * r] * x +
              ours.affine[4 * r + 1] * y +
              ours.affine[4 * r + 2] * k +
              ours.affine[4 * r + 3],
          );
          const v = [0, 1, 2].map(
            (r) => inv[4 * r] * w[0] + inv[4 * r + 1] * w[1] + inv[4 * r + 2] * w[2] + inv[4 * r + 3],
          );
          const [i, j, l] = v.map((c) => Math.round(c));
          for (let c = 0; c < 3; c++) expect(Math.abs(v[c] - [i, j, l][c])).toBeLessThan(1e-3);
          expect(dcm2niix.data[i + mx * (j + my * l)]).toBeCloseTo(ours.data[x + nx * (y + ny * k)], 3);
        }
      }
    }
    expect(ours.spacing.map((s) => Math.round(s * 1000) / 1000)).toEqual([0.7, 0.8, 2.5]);
  });

  it('groups a mixed folder by series, ignores non-DICOM files, and asks which series to read', async () => {
    const series = await listDicomSeries(join(root, 'mixed'));
    expect(series.map((s) => [s.seriesInstanceUid, s.files.length]).sort()).toEqual([
      ['1.2.826.0.1.3680043.8.498.101', 6],
      ['1.2.826.0.1.3680043.8.498.202', 3],
    ]);
    await expect(readDicomSeries(join(root, 'mixed'))).rejects.toThrow(/2 series found/);
    const b = await readDicomSeries(join(root, 'mixed'), '1.2.826.0.1.3680043.8.498.202');
    expect(b.dims).toEqual([8, 8, 3]);
  });

  it('names the file and the transfer syntax it cannot decode', async () => {
    await expect(readDicomSeries(join(root, 'jpeg'))).rejects.toThrow(
      /j00\d\.dcm: pixel data uses JPEG Baseline \(1\.2\.840\.10008\.1\.2\.4\.50\)/,
    );
  });
});
