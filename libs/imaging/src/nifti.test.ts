import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImagingError } from './errors';
import { encodeNifti, parseNifti, readNifti, writeNifti } from './nifti';
import type { Volume } from './volume';

const PY = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'fedsynth-nifti-'));

function oblique(): Float64Array {
  // 10 degrees about z, 5 about x, voxel sizes 0.9 x 1.1 x 2.5, an offset.
  const [a, b] = [(10 * Math.PI) / 180, (5 * Math.PI) / 180];
  const Rz = [
    [Math.cos(a), -Math.sin(a), 0],
    [Math.sin(a), Math.cos(a), 0],
    [0, 0, 1],
  ];
  const Rx = [
    [1, 0, 0],
    [0, Math.cos(b), -Math.sin(b)],
    [0, Math.sin(b), Math.cos(b)],
  ];
  const z = [0.9, 1.1, 2.5];
  const m = new Float64Array(16);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) m[4 * r + c] = [0, 1, 2].reduce((s, k) => s + Rz[r][k] * Rx[k][c], 0) * z[c];
  m[3] = -90.5;
  m[7] = 12.25;
  m[11] = -40;
  m[15] = 1;
  return m;
}

function ramp(dims: [number, number, number], f: (i: number) => number): Float32Array {
  const n = dims[0] * dims[1] * dims[2];
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

// Files nibabel writes, and what nibabel reads back from them (data as float32, affine).
const PY_SCRIPT = `
import json, sys, numpy as np, nibabel as nib
d = sys.argv[1]
out = {}
aff_lps = np.array([[-0.8,0,0,100.],[0,-0.8,0,80.],[0,0,1.5,-30.],[0,0,0,1]])
aff_ras = np.array([[1.2,0.1,0,-60.],[-0.1,1.2,0,-70.],[0,0,2.,5.],[0,0,0,1]])
shape = (6, 5, 4)
base = np.arange(np.prod(shape)).reshape(shape, order='F')
cases = {
  'int16_scaled.nii.gz': (nib.Nifti1Image, (base * 37 - 500).astype(np.int16), aff_lps, (0.5, -1024.)),
  'float32.nii.gz': (nib.Nifti1Image, (base * 0.25 - 3).astype(np.float32), aff_ras, None),
  'float32_ras.nii': (nib.Nifti1Image, (base * 1.5).astype(np.float32), aff_ras, None),
  'uint8.nii.gz': (nib.Nifti1Image, (base % 256).astype(np.uint8), aff_lps, None),
  'int8.nii.gz': (nib.Nifti1Image, (base % 100 - 50).astype(np.int8), aff_ras, None),
  'uint16.nii.gz': (nib.Nifti1Image, (base * 300).astype(np.uint16), aff_lps, None),
  'int32.nii.gz': (nib.Nifti1Image, (base * 100000 - 7).astype(np.int32), aff_ras, None),
  'float64.nii.gz': (nib.Nifti1Image, (base / 7.0).astype(np.float64), aff_lps, None),
  'nifti2_int16.nii.gz': (nib.Nifti2Image, (base - 60).astype(np.int16), aff_ras, (2.0, 10.)),
}
for name, (cls, data, aff, scale) in cases.items():
    img = cls(data, aff)
    if scale is not None:
        img.header.set_slope_inter(*scale)
    nib.save(img, f'{d}/{name}')
    back = nib.load(f'{d}/{name}')
    out[name] = {'data': back.get_fdata(dtype=np.float32).ravel(order='F').tolist(), 'affine': back.affine.ravel().tolist()}
# qform only (sform code 0): nibabel must fall back to the qform, and so must we.
img = nib.Nifti1Image((base * 2).astype(np.float32), aff_ras)
img.set_sform(None, code=0)
img.set_qform(aff_ras, code=1)
nib.save(img, f'{d}/qform_only.nii.gz')
back = nib.load(f'{d}/qform_only.nii.gz')
out['qform_only.nii.gz'] = {'data': back.get_fdata(dtype=np.float32).ravel(order='F').tolist(), 'affine': back.affine.ravel().tolist()}
# Our files, as nibabel sees them.
ours = {}
for name in json.loads(sys.argv[2]):
    img = nib.load(f'{d}/{name}')
    ours[name] = {'data': img.get_fdata(dtype=np.float32).ravel(order='F').tolist(), 'affine': img.affine.ravel().tolist(),
                  'sform_code': int(img.header['sform_code']), 'qform': img.get_qform().ravel().tolist()}
print(json.dumps({'nibabel': out, 'ours': ours}))
`;

const ours: Record<string, { vol: Volume; datatype: 'float32' | 'int16' }> = {
  'ours_float32.nii.gz': {
    vol: {
      data: ramp([7, 5, 3], (i) => i * 0.5 - 20.25),
      dims: [7, 5, 3],
      spacing: [0.9, 1.1, 2.5],
      affine: oblique(),
    },
    datatype: 'float32',
  },
  'ours_int16.nii.gz': {
    vol: {
      data: ramp([4, 6, 5], (i) => i * 9 - 1024),
      dims: [4, 6, 5],
      spacing: [1, 1, 1],
      affine: Float64Array.from([-1, 0, 0, 50, 0, -1, 0, 60, 0, 0, 3, -10, 0, 0, 0, 1]),
    },
    datatype: 'int16',
  },
  'ours_int16_wide.nii': {
    vol: {
      data: ramp([3, 3, 3], (i) => i * 4000 - 50000),
      dims: [3, 3, 3],
      spacing: [1, 1, 1],
      affine: oblique(),
    },
    datatype: 'int16',
  },
};

let oracle: {
  nibabel: Record<string, { data: number[]; affine: number[] }>;
  ours: Record<string, { data: number[]; affine: number[]; sform_code: number; qform: number[] }>;
};

beforeAll(async () => {
  for (const [name, { vol, datatype }] of Object.entries(ours))
    await writeNifti(join(dir, name), vol, { datatype });
  oracle = JSON.parse(
    execFileSync(PY, ['-c', PY_SCRIPT, dir, JSON.stringify(Object.keys(ours))], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }),
  );
});

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected[i])));
  }
}

describe('NIfTI against nibabel', () => {
  it('reads every file nibabel writes to the same values and affine (scaling, dtypes, NIfTI-2, qform only)', async () => {
    for (const [name, ref] of Object.entries(oracle.nibabel)) {
      const vol = await readNifti(join(dir, name));
      expect(vol.dims).toEqual([6, 5, 4]);
      expectClose(vol.data, ref.data, 1e-6);
      expectClose(vol.affine, ref.affine, 1e-5);
    }
  });

  it('writes files nibabel reads with the same data, affine and a matching qform', () => {
    for (const [name, { vol, datatype }] of Object.entries(ours)) {
      const seen = oracle.ours[name];
      expect(seen.sform_code).toBe(1);
      expectClose(seen.affine, vol.affine, 1e-5);
      expectClose(seen.qform, vol.affine, 1e-4);
      const tol = datatype === 'int16' && name.includes('wide') ? 1e-3 : 1e-6;
      expectClose(
        seen.data,
        datatype === 'int16' && !name.includes('wide') ? vol.data.map(Math.round) : vol.data,
        tol,
      );
    }
  });

  it('round-trips its own files', async () => {
    const { vol } = ours['ours_float32.nii.gz'];
    const back = await readNifti(join(dir, 'ours_float32.nii.gz'));
    expect(Array.from(back.data)).toEqual(Array.from(vol.data));
    expectClose(back.affine, vol.affine, 1e-6);
    expectClose(back.spacing, [0.9, 1.1, 2.5], 1e-6);
  });
});

describe('NIfTI errors name the file and the problem', () => {
  it('truncated voxel data, truncated gzip, garbage, missing file, 4D, zero or negative dims', async () => {
    const full = encodeNifti(ours['ours_float32.nii.gz'].vol);
    const cut = join(dir, 'cut.nii');
    writeFileSync(cut, full.subarray(0, full.length - 10));
    await expect(readNifti(cut)).rejects.toThrow(
      /cut\.nii: truncated: 105 float32 voxels need 772 bytes, the file has 762/,
    );
    const cutgz = join(dir, 'cut.nii.gz');
    const gz = gzipSync(full);
    writeFileSync(cutgz, gz.subarray(0, gz.length - 20));
    await expect(readNifti(cutgz)).rejects.toThrow(/cut\.nii\.gz: gzip data is truncated/);
    const junk = join(dir, 'junk.nii');
    writeFileSync(junk, Buffer.alloc(400, 7));
    await expect(readNifti(junk)).rejects.toMatchObject({ code: 'CORRUPT_FILE', file: junk });
    await expect(readNifti(join(dir, 'absent.nii.gz'))).rejects.toThrow(
      /absent\.nii\.gz: cannot be read \(ENOENT\)/,
    );
    const four = Buffer.from(full);
    four.writeInt16LE(4, 40);
    four.writeInt16LE(2, 48);
    expect(() => parseNifti(four, 'four.nii')).toThrow(ImagingError);
    expect(() => parseNifti(four, 'four.nii')).toThrow(/four\.nii: 4D image/);
    // dim[] is int16[8] at byte 40; a zero or negative size used to be read as 1.
    for (const [k, size] of [
      [3, 0],
      [2, -4],
    ]) {
      const bad = Buffer.from(full);
      bad.writeInt16LE(size, 40 + 2 * k);
      const file = join(dir, `dim${k}.nii.gz`);
      writeFileSync(file, gzipSync(bad));
      await expect(readNifti(file)).rejects.toMatchObject({
        code: 'CORRUPT_FILE',
        file,
        message: `${file}: dim[${k}] is ${size}; with dim[0] = 3, dim[1..3] must each be at least 1`,
      });
    }
    expect(readFileSync(cut).length).toBe(762);
  });
});
