import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as dicomParser from 'dicom-parser';
import { ImagingError } from './errors';
import type { Volume } from './volume';

/** Transfer syntaxes whose pixel data this reader decodes (uncompressed). */
const NATIVE_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
};

/** Names of common compressed syntaxes, for error messages. */
const COMPRESSED_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** One image of a series, with what is needed to place it. */
interface SliceInfo {
  file: string;
  seriesUid: string;
  seriesDescription: string;
  modality: string;
  rows: number;
  cols: number;
  position: [number, number, number];
  orientation: [number, number, number, number, number, number];
  spacing: [number, number]; // row spacing, column spacing (PixelSpacing order)
  dataSet: dicomParser.DataSet;
  syntax: string;
}

/** A DICOM series found in a folder. */
export interface DicomSeries {
  seriesInstanceUid: string;
  /** SeriesDescription (0008,103E); '' when absent. */
  description: string;
  /** Modality (0008,0060): 'MR', 'CT', 'PT', ...; '' when absent. */
  modality: string;
  /** The series' image files, sorted by path. */
  files: string[];
}

function parseFile(file: string, bytes: Uint8Array): SliceInfo | null {
  // Part 10 files carry "DICM" after a 128-byte preamble; anything else in the folder is skipped.
  if (bytes.length < 132 || String.fromCharCode(bytes[128], bytes[129], bytes[130], bytes[131]) !== 'DICM')
    return null;
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(bytes);
  } catch (err) {
    const msg = typeof err === 'string' ? err : ((err as Error)?.message ?? String(err));
    throw new ImagingError('CORRUPT_FILE', `${file}: cannot be parsed as DICOM (${msg})`, file);
  }
  const seriesUid = ds.string('x0020000e');
  if (!seriesUid || !ds.elements.x7fe00010) return null; // no image in this file
  const syntax = ds.string('x00020010') ?? '1.2.840.10008.1.2';
  const nums = (tag: string, n: number, what: string) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const v = ds.floatString(tag, i);
      if (v === undefined || !Number.isFinite(v))
        throw new ImagingError('CORRUPT_FILE', `${file}: missing or malformed ${what} (${tag})`, file);
      out.push(v);
    }
    return out;
  };
  return {
    file,
    seriesUid,
    seriesDescription: ds.string('x0008103e') ?? '',
    modality: (ds.string('x00080060') ?? '').toUpperCase(),
    rows: ds.uint16('x00280010') ?? 0,
    cols: ds.uint16('x00280011') ?? 0,
    position: nums('x00200032', 3, 'ImagePositionPatient') as SliceInfo['position'],
    orientation: nums('x00200037', 6, 'ImageOrientationPatient') as SliceInfo['orientation'],
    spacing: nums('x00280030', 2, 'PixelSpacing') as SliceInfo['spacing'],
    dataSet: ds,
    syntax,
  };
}

/** Whether a file starts like a Part 10 DICOM file ("DICM" after the 128-byte preamble). */
async function hasDicomMagic(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(132);
    const { bytesRead } = await fh.read(head, 0, 132, 0);
    return bytesRead === 132 && head.toString('latin1', 128, 132) === 'DICM';
  } finally {
    await fh.close();
  }
}

/**
 * The files under a folder, sorted, down to `maxDepth` levels of subfolders (0: the folder
 * only). Symbolic links to files and folders are followed (each folder visited once); broken
 * links are skipped.
 */
async function collectFiles(dir: string, maxDepth = Number.POSITIVE_INFINITY): Promise<string[]> {
  const seen = new Set<string>();
  const walk = async (d: string, depth: number): Promise<string[]> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      throw new ImagingError(
        'FILE_NOT_FOUND',
        `${d}: cannot read the DICOM folder (${(err as NodeJS.ErrnoException).code ?? err})`,
        d,
      );
    }
    seen.add(await realpath(d));
    const out: string[] = [];
    for (const e of entries) {
      const p = join(d, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const st = await stat(p).catch(() => undefined);
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
        if (isDir && seen.has(await realpath(p))) continue;
      }
      if (isDir) {
        if (depth < maxDepth) out.push(...(await walk(p, depth + 1)));
      } else if (isFile) out.push(p);
    }
    return out;
  };
  return (await walk(dir, 0)).sort();
}

/** Slices grouped by series; `pick` keeps what the caller needs of each (so headers can be dropped). */
async function scan<T>(dir: string, pick: (s: SliceInfo) => T, maxDepth?: number): Promise<Map<string, T[]>> {
  const bySeries = new Map<string, T[]>();
  for (const file of await collectFiles(dir, maxDepth)) {
    if (!(await hasDicomMagic(file))) continue;
    const info = parseFile(file, new Uint8Array(await readFile(file)));
    if (!info) continue;
    const list = bySeries.get(info.seriesUid) ?? [];
    list.push(pick(info));
    bySeries.set(info.seriesUid, list);
  }
  return bySeries;
}

/**
 * The image series in a folder, grouped by SeriesInstanceUID. Subfolders are searched
 * recursively, down to `opts.maxDepth` levels (default: all); symbolic links are followed.
 */
export async function listDicomSeries(dir: string, opts: { maxDepth?: number } = {}): Promise<DicomSeries[]> {
  const bySeries = await scan(
    dir,
    (s) => ({ file: s.file, description: s.seriesDescription, modality: s.modality }),
    opts.maxDepth,
  );
  return [...bySeries].map(([uid, slices]) => ({
    seriesInstanceUid: uid,
    description: slices[0].description,
    modality: slices[0].modality,
    files: slices.map((s) => s.file),
  }));
}

function cross(a: number[], b: number[]): [number, number, number] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function pixels(s: SliceInfo, out: Float32Array, offset: number): void {
  if (!NATIVE_SYNTAXES[s.syntax]) {
    const name = COMPRESSED_SYNTAXES[s.syntax] ?? 'an unsupported transfer syntax';
    throw new ImagingError(
      'UNSUPPORTED_TRANSFER_SYNTAX',
      `${s.file}: pixel data uses ${name} (${s.syntax}), which this reader cannot decode; convert the series to uncompressed DICOM or NIfTI (e.g. with dcm2niix)`,
      s.file,
    );
  }
  const ds = s.dataSet;
  const el = ds.elements.x7fe00010;
  const bits = ds.uint16('x00280100') ?? 16;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const spp = ds.uint16('x00280002') ?? 1;
  if (spp !== 1)
    throw new ImagingError(
      'UNSUPPORTED_FORMAT',
      `${s.file}: ${spp} samples per pixel; only grayscale images are supported`,
      s.file,
    );
  const n = s.rows * s.cols;
  const bytesPer = bits / 8;
  if (![8, 16, 32].includes(bits))
    throw new ImagingError(
      'UNSUPPORTED_FORMAT',
      `${s.file}: ${bits} bits allocated is not supported`,
      s.file,
    );
  if (el.length < n * bytesPer)
    throw new ImagingError(
      'TRUNCATED_FILE',
      `${s.file}: pixel data has ${el.length} bytes, ${s.rows}x${s.cols} pixels need ${n * bytesPer}`,
      s.file,
    );
  const slope = ds.floatString('x00281053') ?? 1;
  const inter = ds.floatString('x00281052') ?? 0;
  const le = s.syntax !== '1.2.840.10008.1.2.2';
  const dv = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + el.dataOffset, n * bytesPer);
  for (let i = 0; i < n; i++) {
    let v: number;
    if (bits === 16) v = signed ? dv.getInt16(2 * i, le) : dv.getUint16(2 * i, le);
    else if (bits === 8) v = signed ? dv.getInt8(i) : dv.getUint8(i);
    else v = signed ? dv.getInt32(4 * i, le) : dv.getUint32(4 * i, le);
    out[offset + i] = v * slope + inter;
  }
}

/**
 * Reads one DICOM series from a folder as a volume: slices ordered along the slice normal (from
 * ImagePositionPatient / ImageOrientationPatient), RescaleSlope/Intercept applied (HU for CT), and
 * the affine converted from DICOM's LPS to RAS. With several series in the folder, pass the
 * SeriesInstanceUID to choose; otherwise the error lists them.
 */
export async function readDicomSeries(dir: string, seriesInstanceUid?: string): Promise<Volume> {
  const bySeries = await scan(dir, (s) => s);
  if (bySeries.size === 0) throw new ImagingError('DATASET_PROBLEM', `${dir}: no DICOM images found`, dir);
  let uid = seriesInstanceUid;
  if (!uid) {
    if (bySeries.size > 1) {
      throw new ImagingError(
        'DATASET_PROBLEM',
        `${dir}: ${bySeries.size} series found (${[...bySeries.keys()].join(', ')}); choose one by SeriesInstanceUID`,
        dir,
      );
    }
    uid = [...bySeries.keys()][0];
  }
  const slices = bySeries.get(uid);
  if (!slices) throw new ImagingError('DATASET_PROBLEM', `${dir}: no series ${uid}`, dir);
  const first = slices[0];
  for (const s of slices) {
    if (s.rows !== first.rows || s.cols !== first.cols)
      throw new ImagingError(
        'SHAPE_MISMATCH',
        `${s.file}: ${s.rows}x${s.cols} differs from the series' ${first.rows}x${first.cols}`,
        s.file,
      );
    if (s.orientation.some((v, i) => Math.abs(v - first.orientation[i]) > 1e-4))
      throw new ImagingError(
        'DATASET_PROBLEM',
        `${s.file}: image orientation differs within the series`,
        s.file,
      );
  }
  const rowDir = first.orientation.slice(0, 3);
  const colDir = first.orientation.slice(3, 6);
  const normal = cross(rowDir, colDir);
  const dist = (s: SliceInfo) =>
    s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2];
  slices.sort((a, b) => dist(a) - dist(b));
  for (let i = 1; i < slices.length; i++) {
    if (Math.abs(dist(slices[i]) - dist(slices[i - 1])) < 1e-4) {
      throw new ImagingError(
        'DATASET_PROBLEM',
        `${slices[i].file}: two slices at the same position (${slices[i - 1].file})`,
        slices[i].file,
      );
    }
  }
  const nz = slices.length;
  const nx = first.cols;
  const ny = first.rows;
  const data = new Float32Array(nx * ny * nz);
  slices.forEach((s, k) => {
    pixels(s, data, k * nx * ny);
  });
  const [rowSpacing, colSpacing] = first.spacing;
  const p0 = slices[0].position;
  const step: [number, number, number] =
    nz > 1
      ? ([0, 1, 2].map((i) => (slices[nz - 1].position[i] - p0[i]) / (nz - 1)) as [number, number, number])
      : (normal.map((v) => v * (first.dataSet.floatString('x00180050') ?? 1)) as [number, number, number]);
  // LPS affine: x index runs along the row direction (columns), y along the column direction (rows).
  const lps = [
    [rowDir[0] * colSpacing, colDir[0] * rowSpacing, step[0], p0[0]],
    [rowDir[1] * colSpacing, colDir[1] * rowSpacing, step[1], p0[1]],
    [rowDir[2] * colSpacing, colDir[2] * rowSpacing, step[2], p0[2]],
  ];
  const affine = new Float64Array(16);
  for (let c = 0; c < 4; c++) {
    affine[c] = -lps[0][c];
    affine[4 + c] = -lps[1][c];
    affine[8 + c] = lps[2][c];
  }
  affine[15] = 1;
  return { data, dims: [nx, ny, nz], spacing: [colSpacing, rowSpacing, Math.hypot(...step)], affine };
}

/** What turns a PET image's activity concentration into SUV, as stored in one DICOM file. */
export interface PetDicomTags {
  file: string;
  /** Modality (0008,0060). */
  modality?: string;
  /** PatientWeight (0010,1030), kg. */
  patientWeightKg?: number;
  /** RadionuclideTotalDose (0018,1074) of the first RadiopharmaceuticalInformationSequence item, Bq. */
  radionuclideTotalDoseBq?: number;
  /** RadionuclideHalfLife (0018,1075), s. */
  radionuclideHalfLifeS?: number;
  /** RadiopharmaceuticalStartTime (0018,1072), else the time of RadiopharmaceuticalStartDateTime (0018,1078). */
  radiopharmaceuticalStartTime?: string;
  /** SeriesTime (0008,0031). */
  seriesTime?: string;
  /** AcquisitionTime (0008,0032). */
  acquisitionTime?: string;
  /** DecayCorrection (0054,1102): START, ADMIN or NONE. */
  decayCorrection?: string;
  /** Units (0054,1001): BQML, CNTS, ... */
  units?: string;
}

/**
 * Reads the PET dose tags of one DICOM file (any uncompressed transfer syntax: explicit or
 * implicit VR little endian, explicit big endian), including the first item of the
 * RadiopharmaceuticalInformationSequence (0054,0016). Absent tags are left undefined.
 */
export async function readPetTags(file: string): Promise<PetDicomTags> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (err) {
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`,
      file,
    );
  }
  if (bytes.length < 132 || String.fromCharCode(bytes[128], bytes[129], bytes[130], bytes[131]) !== 'DICM')
    throw new ImagingError('CORRUPT_FILE', `${file}: not a DICOM file (no "DICM" after the preamble)`, file);
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  } catch (err) {
    const msg = typeof err === 'string' ? err : ((err as Error)?.message ?? String(err));
    throw new ImagingError('CORRUPT_FILE', `${file}: cannot be parsed as DICOM (${msg})`, file);
  }
  const str = (d: dicomParser.DataSet, tag: string) => {
    const v = d.string(tag)?.trim();
    return v ? v : undefined;
  };
  const num = (d: dicomParser.DataSet, tag: string, name: string) => {
    const v = str(d, tag);
    if (v === undefined) return undefined;
    const x = Number(v.split('\\')[0]);
    if (!Number.isFinite(x))
      throw new ImagingError('CORRUPT_FILE', `${file}: ${name} (${tag}) is "${v}", not a number`, file);
    return x;
  };
  const item = ds.elements.x00540016?.items?.[0]?.dataSet;
  const startDateTime = item ? str(item, 'x00181078') : undefined;
  const out: PetDicomTags = {
    file,
    modality: str(ds, 'x00080060')?.toUpperCase(),
    patientWeightKg: num(ds, 'x00101030', 'PatientWeight'),
    radionuclideTotalDoseBq: item ? num(item, 'x00181074', 'RadionuclideTotalDose') : undefined,
    radionuclideHalfLifeS: item ? num(item, 'x00181075', 'RadionuclideHalfLife') : undefined,
    radiopharmaceuticalStartTime:
      (item ? str(item, 'x00181072') : undefined) ??
      (startDateTime && startDateTime.length > 8
        ? startDateTime.slice(8).replace(/[+-]\d{4}$/, '')
        : undefined),
    seriesTime: str(ds, 'x00080031'),
    acquisitionTime: str(ds, 'x00080032'),
    decayCorrection: str(ds, 'x00541102')?.toUpperCase(),
    units: str(ds, 'x00541001')?.toUpperCase(),
  };
  for (const k of Object.keys(out) as (keyof PetDicomTags)[]) if (out[k] === undefined) delete out[k];
  return out;
}
