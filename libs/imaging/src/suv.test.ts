import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listDicomSeries, readDicomSeries, readPetTags } from './dicom';
import { writeDicomSeries } from './dicom-write';
import { type PetDose, petDoseFromDicom, petDoseFromSidecar, suvFactor } from './suv';
import { diagonalAffine, type Volume } from './volume';

// 70 kg, 370 MBq of F-18 (half-life 6586.2 s) injected at 10:00:00, scan (decay correction to its
// start) at 11:00:00: dt = 3600 s, 3600 / 6586.2 = 0.546597, 2^-0.546597 = 0.684633, so the dose at
// the scan start is 370e6 * 0.684633 = 253.3142e6 Bq and the factor 70000 g / 253.3142e6 Bq
// = 2.763367e-4 g/Bq (5000 Bq/mL -> SUV 1.3817).
const HAND_FACTOR = 2.763367e-4;
// Injected 23:30:00, scanned 00:15:00 the next day: dt = 2700 s, 2^(-2700 / 6586.2) = 0.752650,
// dose 278.4807e6 Bq, factor 70000 / 278.4807e6 = 2.513639e-4.
const MIDNIGHT_FACTOR = 2.513639e-4;
// No decay: 70000 / 370e6 = 1.891892e-4.
const ADMIN_FACTOR = 1.891892e-4;

const F18: PetDose = {
  weightKg: 70,
  injectedDoseBq: 370e6,
  halfLifeS: 6586.2,
  injectionTime: '100000',
  scanTime: '110000',
  decayCorrection: 'START',
};

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** The largest |a[i] - b[offset + i]|. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>, offset = 0): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[offset + i]));
  return m;
}

describe('suvFactor', () => {
  it('decays the dose from injection to scan start (START)', () => {
    expect(rel(suvFactor(F18), HAND_FACTOR)).toBeLessThan(1e-6);
    expect(rel(suvFactor({ ...F18, decayCorrection: undefined }), HAND_FACTOR)).toBeLessThan(1e-6);
    expect(
      rel(suvFactor({ ...F18, injectionTime: '10:00:00', scanTime: '110000.000000' }), HAND_FACTOR),
    ).toBeLessThan(1e-6);
    expect(rel(suvFactor({ ...F18, units: 'BQML' }), HAND_FACTOR)).toBeLessThan(1e-6);
  });

  it('handles a scan after midnight', () => {
    expect(
      rel(suvFactor({ ...F18, injectionTime: '233000', scanTime: '001500' }), MIDNIGHT_FACTOR),
    ).toBeLessThan(1e-6);
  });

  it('uses the dose as given with ADMIN and NONE', () => {
    expect(rel(suvFactor({ ...F18, decayCorrection: 'ADMIN' }), ADMIN_FACTOR)).toBeLessThan(1e-6);
    expect(
      rel(suvFactor({ weightKg: 70, injectedDoseBq: 370e6, decayCorrection: 'NONE' }), ADMIN_FACTOR),
    ).toBeLessThan(1e-6);
  });

  it('names each invalid or missing field', () => {
    expect(() => suvFactor({ ...F18, weightKg: 0 })).toThrow(/weightKg must be a positive finite number/);
    expect(() => suvFactor({ ...F18, weightKg: Number.NaN })).toThrow(/weightKg/);
    expect(() => suvFactor({ ...F18, weightKg: undefined as unknown as number })).toThrow(/weightKg/);
    expect(() => suvFactor({ ...F18, injectedDoseBq: -1 })).toThrow(/injectedDoseBq/);
    expect(() => suvFactor({ ...F18, halfLifeS: Number.POSITIVE_INFINITY })).toThrow(/halfLifeS/);
    expect(() => suvFactor({ ...F18, units: 'CNTS' })).toThrow(/units "CNTS"/);
    expect(() => suvFactor({ weightKg: 70, injectedDoseBq: 370e6 })).toThrow(
      /missing: injectionTime, scanTime, halfLifeS/,
    );
    expect(() => suvFactor({ ...F18, scanTime: '25:00' })).toThrow(/scanTime "25:00"/);
    expect(() => suvFactor({ ...F18, scanTime: '095500' })).toThrow(/23\.9 h after injectionTime/);
    try {
      suvFactor({ ...F18, weightKg: 0 });
    } catch (e) {
      expect((e as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('petDoseFromSidecar', () => {
  let dir: string;
  const sidecar = (name: string, body: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify(body));
    return p;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedsynth-suv-json-'));
  });

  it('reads BIDS keys, converting the activity unit and decaying to the decay correction time', async () => {
    const timed = await petDoseFromSidecar(
      sidecar('bids.json', {
        BodyWeight: 70,
        InjectedRadioactivity: 370,
        InjectedRadioactivityUnits: 'MBq',
        RadionuclideHalfLife: 6586.2,
        Units: 'Bq/mL',
        TimeZero: '09:30:00',
        InjectionStart: 1800,
        ScanStart: 5400,
        ImageDecayCorrected: true,
        ImageDecayCorrectionTime: 5400,
      }),
    );
    expect(timed).toMatchObject({
      weightKg: 70,
      injectedDoseBq: 370e6,
      decayCorrection: 'START',
      units: 'BQML',
    });
    expect(timed.injectionTime).toBe('100000.000000');
    expect(timed.scanTime).toBe('110000.000000');
    expect(rel(suvFactor(timed), HAND_FACTOR)).toBeLessThan(1e-6);
    // 10 mCi = 370 MBq; without timing the dose is used as given.
    const plain = await petDoseFromSidecar(
      sidecar('mci.json', { BodyWeight: 70, InjectedRadioactivity: 10, InjectedRadioactivityUnits: 'mCi' }),
    );
    expect(plain).toEqual({ weightKg: 70, injectedDoseBq: 370e6, decayCorrection: 'ADMIN' });
    expect(rel(suvFactor(plain), ADMIN_FACTOR)).toBeLessThan(1e-6);
    const kbq = await petDoseFromSidecar(
      sidecar('kbq.json', { BodyWeight: 80, InjectedRadioactivity: 2e5, InjectedRadioactivityUnits: 'kBq' }),
    );
    expect(kbq.injectedDoseBq).toBeCloseTo(2e8, 3);
  });

  it('reads the short form', async () => {
    const d = await petDoseFromSidecar(sidecar('short.json', { weightKg: 70, injectedDoseMBq: 370 }));
    expect(d).toEqual({ weightKg: 70, injectedDoseBq: 370e6, decayCorrection: 'ADMIN' });
    const timed = await petDoseFromSidecar(
      sidecar('short-timed.json', {
        weightKg: 70,
        injectedDoseMBq: 370,
        halfLifeS: 6586.2,
        injectionTime: '100000',
        scanTime: '110000',
      }),
    );
    expect(rel(suvFactor(timed), HAND_FACTOR)).toBeLessThan(1e-6);
  });

  it('names the file and the missing field', async () => {
    const noWeight = sidecar('no-weight.json', {
      InjectedRadioactivity: 370,
      InjectedRadioactivityUnits: 'MBq',
    });
    await expect(petDoseFromSidecar(noWeight)).rejects.toThrow(/no-weight\.json: no "BodyWeight"/);
    const shortNoWeight = sidecar('short-no-weight.json', { injectedDoseMBq: 370 });
    await expect(petDoseFromSidecar(shortNoWeight)).rejects.toThrow(/short-no-weight\.json: no "weightKg"/);
    await expect(
      petDoseFromSidecar(sidecar('no-unit.json', { BodyWeight: 70, InjectedRadioactivity: 370 })),
    ).rejects.toThrow(/no-unit\.json: no "InjectedRadioactivityUnits"/);
    await expect(
      petDoseFromSidecar(
        sidecar('bad-unit.json', {
          BodyWeight: 70,
          InjectedRadioactivity: 370,
          InjectedRadioactivityUnits: 'Ci/kg',
        }),
      ),
    ).rejects.toThrow(/"Ci\/kg" is not one of/);
    await expect(
      petDoseFromSidecar(sidecar('zero.json', { weightKg: 0, injectedDoseMBq: 370 })),
    ).rejects.toThrow(/"weightKg" must be a positive number/);
    await expect(petDoseFromSidecar(join(dir, 'absent.json'))).rejects.toThrow(
      /absent\.json: cannot be read/,
    );
    await expect(
      petDoseFromSidecar(
        sidecar('no-half-life.json', {
          BodyWeight: 70,
          InjectedRadioactivity: 370,
          InjectedRadioactivityUnits: 'MBq',
          InjectionStart: 0,
          ScanStart: 3600,
        }),
      ),
    ).rejects.toThrow(/no-half-life\.json: no "RadionuclideHalfLife"/);
  });
});

describe('PET DICOM', () => {
  let root: string;
  const [nx, ny, nz] = [6, 5, 4];
  const pet: Volume = {
    data: Float32Array.from({ length: nx * ny * nz }, (_, i) =>
      i % 7 === 0 ? 0 : 137.5 * i + 0.3 * Math.sin(i),
    ),
    dims: [nx, ny, nz],
    spacing: [2, 2.5, 3.27],
    affine: diagonalAffine([2, 2.5, 3.27], [-10, 20, 5]),
  };
  const max = Math.max(...pet.data);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fedsynth-suv-dcm-'));
    await writeDicomSeries(pet, join(root, 'pet'), {
      modality: 'PT',
      seriesDescription: 'PET AC',
      patientId: 'P1',
      pet: F18,
    });
  });

  it('round-trips values and geometry through our reader and the dose tags through petDoseFromDicom', async () => {
    const v = await readDicomSeries(join(root, 'pet'));
    expect(v.dims).toEqual(pet.dims);
    for (let i = 0; i < 16; i++) expect(v.affine[i]).toBeCloseTo(pet.affine[i], 5);
    // PET keeps intercept 0: slope = max / 32767, error at most half of it.
    for (let i = 0; i < v.data.length; i++)
      expect(Math.abs(v.data[i] - pet.data[i])).toBeLessThanOrEqual((max / 32767 / 2) * 1.01);
    const dose = await petDoseFromDicom(join(root, 'pet'));
    expect(dose).toEqual({ ...F18, units: 'BQML' });
    expect(rel(suvFactor(dose), HAND_FACTOR)).toBeLessThan(1e-6);
    const [series] = await listDicomSeries(join(root, 'pet'));
    expect(series.modality).toBe('PT');
    expect(await petDoseFromDicom(series)).toEqual(dose);
    expect(await petDoseFromDicom(series.files[2])).toEqual(dose);
  });

  it('is read by pydicom: pixel values, geometry and the PET tags with their sequence', () => {
    const script = `
import json, sys, glob, pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut
out = []
for f in sorted(glob.glob(sys.argv[1] + '/*.dcm')):
    d = pydicom.dcmread(f)
    it = d.RadiopharmaceuticalInformationSequence[0]
    out.append({'n': int(d.InstanceNumber), 'sop': d.SOPClassUID, 'ipp': [float(v) for v in d.ImagePositionPatient],
      'iop': [float(v) for v in d.ImageOrientationPatient], 'ps': [float(v) for v in d.PixelSpacing],
      'th': float(d.SliceThickness), 'w': float(d.PatientWeight), 'dose': float(it.RadionuclideTotalDose),
      'hl': float(it.RadionuclideHalfLife), 'inj': it.RadiopharmaceuticalStartTime, 'st': d.SeriesTime,
      'units': d.Units, 'dc': d.DecayCorrection, 'inter': float(d.RescaleIntercept),
      'px': apply_modality_lut(d.pixel_array, d).astype(float).ravel().tolist()})
print(json.dumps(out))
`;
    const files = JSON.parse(
      execFileSync('/usr/bin/python3', ['-c', script, join(root, 'pet')], { encoding: 'utf8' }),
    );
    expect(files).toHaveLength(nz);
    for (const f of files) {
      const k = f.n - 1;
      expect(f.sop).toBe('1.2.840.10008.5.1.4.1.1.128');
      // RAS (-10, 20, 5 + 3.27 k) is LPS (10, -20, 5 + 3.27 k); x and y run towards L and P reversed.
      expect(maxDiff(f.ipp, [10, -20, 5 + 3.27 * k])).toBeLessThan(1e-6);
      expect(f.iop).toEqual([-1, 0, 0, 0, -1, 0]);
      expect(f.ps).toEqual([2.5, 2]);
      expect(f.th).toBeCloseTo(3.27, 9);
      expect([f.w, f.dose, f.hl, f.inj, f.st, f.units, f.dc, f.inter]).toEqual([
        70,
        370e6,
        6586.2,
        '100000',
        '110000',
        'BQML',
        'START',
        0,
      ]);
      expect(maxDiff(f.px, pet.data, k * nx * ny)).toBeLessThanOrEqual((max / 32767 / 2) * 1.01);
    }
  });

  it('reads the dose tags of files pydicom writes in implicit and explicit VR, and names a missing weight', async () => {
    const script = `
import sys, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset, Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
for name, syntax, weight in [('implicit', ImplicitVRLittleEndian, 82.5), ('explicit', ExplicitVRLittleEndian, 82.5), ('noweight', ExplicitVRLittleEndian, None)]:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.128'
    meta.MediaStorageSOPInstanceUID = '1.2.3.4.' + str(len(name))
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\\0' * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
    ds.Modality = 'PT'; ds.SeriesTime = '001500'; ds.AcquisitionTime = '001501'
    if weight is not None: ds.PatientWeight = weight
    item = Dataset()
    item.RadiopharmaceuticalStartTime = '233000.00'
    item.RadionuclideTotalDose = 3.7e8
    item.RadionuclideHalfLife = 6586.2
    item.Radiopharmaceutical = 'Fluorodeoxyglucose'
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    ds.Units = 'BQML'; ds.DecayCorrection = 'START'
    ds.save_as(sys.argv[1] + '/' + name + '.dcm', write_like_original=False)
`;
    const dir = join(root, 'pydicom');
    mkdirSync(dir);
    execFileSync('/usr/bin/python3', ['-c', script, dir]);
    for (const name of ['implicit', 'explicit']) {
      const tags = await readPetTags(join(dir, `${name}.dcm`));
      expect(tags).toMatchObject({
        modality: 'PT',
        patientWeightKg: 82.5,
        radionuclideTotalDoseBq: 3.7e8,
        radionuclideHalfLifeS: 6586.2,
        radiopharmaceuticalStartTime: '233000.00',
        seriesTime: '001500',
        units: 'BQML',
        decayCorrection: 'START',
      });
      const dose = await petDoseFromDicom(join(dir, `${name}.dcm`));
      expect(rel(suvFactor(dose), (MIDNIGHT_FACTOR * 82.5) / 70)).toBeLessThan(1e-6);
    }
    await expect(petDoseFromDicom(join(dir, 'noweight.dcm'))).rejects.toThrow(
      /noweight\.dcm: PatientWeight \(0010,1030\) is missing/,
    );
  });
});
