import { readFile, stat } from 'node:fs/promises';
import { type DicomSeries, listDicomSeries, type PetDicomTags, readPetTags } from './dicom';
import { ImagingError } from './errors';

/** What turns a PET activity concentration (Bq/mL) into body-weight SUV. */
export interface PetDose {
  /** The patient's weight, kg. */
  weightKg: number;
  /** The injected activity at injection time, Bq. */
  injectedDoseBq: number;
  /** The radionuclide's half-life, s (F-18: 6586.2 s). Needed with decayCorrection 'START'. */
  halfLifeS?: number;
  /** Time of day of the injection, HHMMSS(.ffffff) (HH:MM:SS also read). */
  injectionTime?: string;
  /**
   * Time of day the image activity is decay corrected to (DICOM: the series start, SeriesTime),
   * HHMMSS(.ffffff).
   */
  scanTime?: string;
  /**
   * DecayCorrection (0054,1102), 'START' by default (as in DICOM PET):
   * - 'START': the image is decay corrected to the scan start, so the dose is decayed from
   *   injectionTime to scanTime before dividing;
   * - 'ADMIN': the image is decay corrected to the injection time; the dose is used as given;
   * - 'NONE': the image is not decay corrected. Strictly, each frame's activity should be compared
   *   with the dose decayed to that frame's acquisition time; here it is treated like 'ADMIN' (the
   *   dose is used as given), which overestimates SUV by the decay between injection and scan.
   */
  decayCorrection?: 'START' | 'ADMIN' | 'NONE';
  /** Units (0054,1001) of the image values; only 'BQML' (Bq/mL) gives SUV. Undefined: BQML. */
  units?: string;
}

/** Longest injection-to-scan interval a pair of times of day is trusted for. */
const MAX_UPTAKE_S = 12 * 3600;

/** Seconds since midnight of a DICOM TM (HHMMSS.ffffff, also HHMM, HH and HH:MM:SS). */
export function parseTimeOfDay(text: string, field: string): number {
  const m = /^(\d{2})(?::?(\d{2})(?::?(\d{2})(\.\d{1,6})?)?)?$/.exec(text.trim());
  const h = m ? Number(m[1]) : Number.NaN;
  const min = m?.[2] ? Number(m[2]) : 0;
  const s = m?.[3] ? Number(m[3]) + (m[4] ? Number(m[4]) : 0) : 0;
  if (!m || h > 23 || min > 59 || s >= 61)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `${field} "${text}" is not a time of day of the form HHMMSS(.ffffff) or HH:MM:SS`,
    );
  return h * 3600 + min * 60 + s;
}

function formatTimeOfDay(seconds: number): string {
  const day = 86400 * 1e6;
  const us = ((Math.round(seconds * 1e6) % day) + day) % day;
  const h = Math.floor(us / 3600e6);
  const m = Math.floor((us % 3600e6) / 60e6);
  const s = Math.floor((us % 60e6) / 1e6);
  const f = us % 1e6;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(h)}${two(m)}${two(s)}.${String(f).padStart(6, '0')}`;
}

function positive(value: unknown, field: string, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `${field} must be a positive finite number (${what}), got ${JSON.stringify(value) ?? String(value)}`,
    );
  return value;
}

/**
 * The factor that turns an activity concentration in Bq/mL into body-weight SUV (g/mL):
 * weight_g / dose_Bq, where the dose is the injected dose decayed to the scan start with
 * decayCorrection 'START' (dose * 2^(-(t_scan - t_inj) / halfLife), times of day, a scan after
 * midnight following an injection before it is handled), and the injected dose as given with
 * 'ADMIN' or 'NONE' (see PetDose.decayCorrection). Every missing or invalid field is named.
 */
export function suvFactor(d: PetDose): number {
  const weightKg = positive(d.weightKg, 'weightKg', "the patient's weight in kg");
  const dose = positive(d.injectedDoseBq, 'injectedDoseBq', 'the injected activity in Bq');
  if (d.units !== undefined && d.units.trim().toUpperCase() !== 'BQML')
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `PET units "${d.units}" cannot be turned into SUV; it needs activity concentration in Bq/mL (BQML)`,
    );
  const decay = d.decayCorrection ?? 'START';
  if (decay === 'ADMIN' || decay === 'NONE') return (weightKg * 1000) / dose;
  if (decay !== 'START')
    throw new ImagingError('INVALID_ARGUMENT', `decayCorrection "${decay}" is not one of START, ADMIN, NONE`);
  const missing = (['injectionTime', 'scanTime', 'halfLifeS'] as const).filter((k) => d[k] === undefined);
  if (missing.length > 0)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `decayCorrection START needs injectionTime, scanTime and halfLifeS to decay the dose to the scan start; missing: ${missing.join(', ')} (set decayCorrection 'ADMIN' to use the dose as given)`,
    );
  const halfLife = positive(d.halfLifeS, 'halfLifeS', "the radionuclide's half-life in s");
  const tInj = parseTimeOfDay(d.injectionTime as string, 'injectionTime');
  const tScan = parseTimeOfDay(d.scanTime as string, 'scanTime');
  let dt = tScan - tInj;
  if (dt < 0) dt += 86400; // injected before midnight, scanned after
  if (dt > MAX_UPTAKE_S)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `scanTime ${d.scanTime} is ${(dt / 3600).toFixed(1)} h after injectionTime ${d.injectionTime} (times of day, taken across midnight); an uptake over ${MAX_UPTAKE_S / 3600} h is not trusted from times of day: check both times`,
    );
  return (weightKg * 1000) / (dose * 2 ** (-dt / halfLife));
}

function fromTags(t: PetDicomTags): PetDose {
  const missing = (tag: string, name: string): never => {
    throw new ImagingError('DATASET_PROBLEM', `${t.file}: ${name} (${tag}) is missing; SUV needs it`, t.file);
  };
  const weightKg = t.patientWeightKg ?? missing('0010,1030', 'PatientWeight');
  const injectedDoseBq =
    t.radionuclideTotalDoseBq ??
    missing('0018,1074', 'RadionuclideTotalDose in RadiopharmaceuticalInformationSequence (0054,0016)');
  const dc = t.decayCorrection ?? 'START';
  if (dc !== 'START' && dc !== 'ADMIN' && dc !== 'NONE')
    throw new ImagingError(
      'DATASET_PROBLEM',
      `${t.file}: DecayCorrection (0054,1102) "${dc}" is not one of START, ADMIN, NONE`,
      t.file,
    );
  const dose: PetDose = { weightKg, injectedDoseBq, decayCorrection: dc };
  if (t.radionuclideHalfLifeS !== undefined) dose.halfLifeS = t.radionuclideHalfLifeS;
  if (t.radiopharmaceuticalStartTime !== undefined) dose.injectionTime = t.radiopharmaceuticalStartTime;
  const scan = t.seriesTime ?? t.acquisitionTime;
  if (scan !== undefined) dose.scanTime = scan;
  if (t.units !== undefined) dose.units = t.units;
  if (dc === 'START') {
    if (dose.halfLifeS === undefined) missing('0018,1075', 'RadionuclideHalfLife');
    if (dose.injectionTime === undefined) missing('0018,1072', 'RadiopharmaceuticalStartTime');
    if (dose.scanTime === undefined) missing('0008,0031', 'SeriesTime (and AcquisitionTime 0008,0032)');
  }
  return dose;
}

/**
 * The dose of a PET DICOM series, from its first file: PatientWeight, the
 * RadiopharmaceuticalInformationSequence's RadionuclideTotalDose, RadionuclideHalfLife and
 * RadiopharmaceuticalStartTime, SeriesTime (else AcquisitionTime), DecayCorrection (default
 * START) and Units. `source` is a series (from listDicomSeries), a DICOM file, or a folder holding
 * one PET series (or several, with `seriesInstanceUid` choosing). Missing tags are named.
 */
export async function petDoseFromDicom(
  source: string | DicomSeries,
  seriesInstanceUid?: string,
): Promise<PetDose> {
  let file: string;
  if (typeof source !== 'string') {
    if (source.files.length === 0)
      throw new ImagingError('DATASET_PROBLEM', `series ${source.seriesInstanceUid} has no files`);
    file = source.files[0];
  } else {
    const st = await stat(source).catch((err: NodeJS.ErrnoException) => {
      throw new ImagingError('FILE_NOT_FOUND', `${source}: cannot be read (${err.code ?? err})`, source);
    });
    if (st.isFile()) file = source;
    else {
      const all = await listDicomSeries(source);
      const pet = seriesInstanceUid
        ? all.filter((s) => s.seriesInstanceUid === seriesInstanceUid)
        : all.filter((s) => s.modality === 'PT');
      if (pet.length !== 1)
        throw new ImagingError(
          'DATASET_PROBLEM',
          seriesInstanceUid
            ? `${source}: no DICOM series ${seriesInstanceUid}`
            : `${source}: ${pet.length} PET (Modality PT) series found${pet.length ? ` (${pet.map((s) => `${s.seriesInstanceUid} "${s.description}"`).join(', ')}); choose one by SeriesInstanceUID` : ''}`,
          source,
        );
      file = pet[0].files[0];
    }
  }
  return fromTags(await readPetTags(file));
}

/** Activity units of BIDS' InjectedRadioactivityUnits, in Bq. */
const ACTIVITY_UNITS: Record<string, number> = {
  bq: 1,
  kbq: 1e3,
  mbq: 1e6,
  gbq: 1e9,
  mci: 3.7e7,
  uci: 3.7e4,
  µci: 3.7e4,
};

/**
 * The dose of a PET NIfTI from its JSON sidecar (e.g. `pet.json` beside `pet.nii.gz`), in one of
 * two forms:
 * - BIDS: `BodyWeight` (kg), `InjectedRadioactivity` with `InjectedRadioactivityUnits` (Bq, kBq,
 *   MBq, GBq, mCi, uCi), and optionally `RadionuclideHalfLife` (s), `Units` (of the image: Bq/mL),
 *   and the timing: `TimeZero` (HH:MM:SS), `InjectionStart`, `ScanStart` and
 *   `ImageDecayCorrectionTime` (s from TimeZero), `ImageDecayCorrected`. With the injection time,
 *   the decay correction time (else ScanStart) and the half-life, the dose is decayed to the time
 *   the image is corrected to; without them (or when the image is corrected to the injection) it
 *   is used as given ('ADMIN').
 * - short: `{"weightKg": 70, "injectedDoseMBq": 370}`, optionally with `halfLifeS`,
 *   `injectionTime`, `scanTime` (HHMMSS) and `decayCorrection`; without the times the dose is used
 *   as given.
 * A missing or invalid field is an error naming the file and the field.
 */
export async function petDoseFromSidecar(jsonPath: string): Promise<PetDose> {
  let raw: string;
  try {
    raw = await readFile(jsonPath, 'utf8');
  } catch (err) {
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${jsonPath}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`,
      jsonPath,
    );
  }
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(raw);
  } catch (err) {
    throw new ImagingError(
      'CORRUPT_FILE',
      `${jsonPath}: not valid JSON (${(err as Error).message})`,
      jsonPath,
    );
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw new ImagingError('CORRUPT_FILE', `${jsonPath}: not a JSON object`, jsonPath);
  const problem = (msg: string): never => {
    throw new ImagingError('DATASET_PROBLEM', `${jsonPath}: ${msg}`, jsonPath);
  };
  const need = (key: string, what: string): number => {
    const v = j[key];
    if (v === undefined || v === null) return problem(`no "${key}" (${what})`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      return problem(`"${key}" must be a positive number (${what}), got ${JSON.stringify(v)}`);
    return v;
  };
  const optional = (key: string, what: string): number | undefined =>
    j[key] === undefined || j[key] === null ? undefined : need(key, what);
  const short = 'weightKg' in j || 'injectedDoseMBq' in j;
  if (short) {
    const dose: PetDose = {
      weightKg: need('weightKg', "the patient's weight in kg"),
      injectedDoseBq: need('injectedDoseMBq', 'the injected activity in MBq') * 1e6,
    };
    const halfLifeS = optional('halfLifeS', "the radionuclide's half-life in s");
    if (halfLifeS !== undefined) dose.halfLifeS = halfLifeS;
    for (const key of ['injectionTime', 'scanTime'] as const) {
      const v = j[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string') problem(`"${key}" must be a time of day "HHMMSS", got ${JSON.stringify(v)}`);
      dose[key] = v as string;
    }
    const dc = j.decayCorrection;
    if (dc !== undefined && dc !== 'START' && dc !== 'ADMIN' && dc !== 'NONE')
      problem(`"decayCorrection" must be START, ADMIN or NONE, got ${JSON.stringify(dc)}`);
    dose.decayCorrection =
      (dc as PetDose['decayCorrection']) ?? (dose.injectionTime && dose.scanTime ? 'START' : 'ADMIN');
    return dose;
  }
  if (j.BodyWeight === undefined)
    problem('no "BodyWeight" (the patient\'s weight in kg; or give the short form "weightKg")');
  const weightKg = need('BodyWeight', "the patient's weight in kg");
  if (j.InjectedRadioactivity === undefined)
    problem('no "InjectedRadioactivity" (the injected activity; or give the short form "injectedDoseMBq")');
  const activity = need('InjectedRadioactivity', 'the injected activity');
  const unitText = j.InjectedRadioactivityUnits;
  if (typeof unitText !== 'string')
    return problem(
      `no "InjectedRadioactivityUnits" (the unit of InjectedRadioactivity: ${['Bq', 'kBq', 'MBq', 'GBq', 'mCi', 'uCi'].join(', ')})`,
    );
  const scale = ACTIVITY_UNITS[unitText.trim().toLowerCase()];
  if (scale === undefined)
    problem(`"InjectedRadioactivityUnits" "${unitText}" is not one of Bq, kBq, MBq, GBq, mCi, uCi`);
  const dose: PetDose = { weightKg, injectedDoseBq: activity * scale, decayCorrection: 'ADMIN' };
  const halfLifeS = optional('RadionuclideHalfLife', "the radionuclide's half-life in s");
  if (halfLifeS !== undefined) dose.halfLifeS = halfLifeS;
  if (typeof j.Units === 'string')
    dose.units = j.Units.replace(/\s/g, '').toLowerCase() === 'bq/ml' ? 'BQML' : j.Units;
  const seconds = (key: string): number | undefined => {
    const v = j[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v))
      return problem(`"${key}" must be a number of seconds from TimeZero, got ${JSON.stringify(v)}`);
    return v;
  };
  const injection = seconds('InjectionStart');
  const reference = seconds('ImageDecayCorrectionTime') ?? seconds('ScanStart');
  if (j.ImageDecayCorrected === false) dose.decayCorrection = 'NONE';
  else if (injection !== undefined && reference !== undefined && reference !== injection) {
    if (halfLifeS === undefined)
      problem(
        'no "RadionuclideHalfLife" (s), needed to decay the dose from InjectionStart to the decay correction time',
      );
    let zero = 0;
    if (typeof j.TimeZero === 'string') {
      try {
        zero = parseTimeOfDay(j.TimeZero, 'TimeZero');
      } catch (err) {
        problem((err as Error).message);
      }
    }
    dose.decayCorrection = 'START';
    dose.injectionTime = formatTimeOfDay(zero + injection);
    dose.scanTime = formatTimeOfDay(zero + reference);
  }
  return dose;
}
