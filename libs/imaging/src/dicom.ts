import { readdir, readFile } from 'node:fs/promises';
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
  description: string;
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
    rows: ds.uint16('x00280010') ?? 0,
    cols: ds.uint16('x00280011') ?? 0,
    position: nums('x00200032', 3, 'ImagePositionPatient') as SliceInfo['position'],
    orientation: nums('x00200037', 6, 'ImageOrientationPatient') as SliceInfo['orientation'],
    spacing: nums('x00280030', 2, 'PixelSpacing') as SliceInfo['spacing'],
    dataSet: ds,
    syntax,
  };
}

async function collectFiles(dir: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${dir}: cannot read the DICOM folder (${(err as NodeJS.ErrnoException).code ?? err})`,
      dir,
    );
  }
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await collectFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

async function scan(dir: string): Promise<Map<string, SliceInfo[]>> {
  const bySeries = new Map<string, SliceInfo[]>();
  for (const file of await collectFiles(dir)) {
    const info = parseFile(file, new Uint8Array(await readFile(file)));
    if (!info) continue;
    const list = bySeries.get(info.seriesUid) ?? [];
    list.push(info);
    bySeries.set(info.seriesUid, list);
  }
  return bySeries;
}

/** The image series in a folder (searched recursively), grouped by SeriesInstanceUID. */
export async function listDicomSeries(dir: string): Promise<DicomSeries[]> {
  return [...(await scan(dir))].map(([uid, slices]) => ({
    seriesInstanceUid: uid,
    description: slices[0].seriesDescription,
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
  const bySeries = await scan(dir);
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
