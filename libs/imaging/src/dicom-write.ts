import { createHash, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagingError } from './errors';
import type { PetDose } from './suv';
import type { Volume } from './volume';

/** What writeDicomSeries writes besides the image. */
export interface DicomWriteOptions {
  modality: 'MR' | 'CT' | 'PT';
  seriesDescription: string;
  /** PatientID (and PatientName); 'ANONYMOUS' by default. The study UID is derived from it. */
  patientId?: string;
  /** PET: weight, dose, half-life, times, decay correction and units (default BQML, START). */
  pet?: PetDose;
  /** A fresh UID by default. */
  seriesInstanceUid?: string;
}

const SOP_CLASS = {
  MR: '1.2.840.10008.5.1.4.1.1.4',
  CT: '1.2.840.10008.5.1.4.1.1.2',
  PT: '1.2.840.10008.5.1.4.1.1.128',
} as const;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const IMPLEMENTATION_CLASS_UID = '2.25.67884009676305758183421586880588739812';
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** A new UID of the 2.25 (UUID) root. */
function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`)}`;
}

/** A UID of the 2.25 root derived from a text (the same text, the same UID). */
function uidFrom(text: string): string {
  return `2.25.${BigInt(`0x${createHash('sha256').update(text).digest('hex').slice(0, 32)}`)}`;
}

/** A decimal string (DS) of at most 16 characters, as precise as fits. */
export function decimalString(x: number): string {
  if (!Number.isFinite(x)) throw new ImagingError('INVALID_ARGUMENT', `${x} cannot be written as a DICOM DS`);
  for (let p = 15; p >= 1; p--) {
    const s = String(Number(x.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  throw new ImagingError('INVALID_ARGUMENT', `${x} cannot be written as a DICOM DS`);
}

interface Element {
  tag: number; // (group << 16) | element
  vr: string;
  value: Buffer;
}

function text(tag: number, vr: string, value: string): Element {
  let b = Buffer.from(value, 'latin1');
  if (b.length % 2) b = Buffer.concat([b, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
  return { tag, vr, value: b };
}

const ds = (tag: number, values: number[]) => text(tag, 'DS', values.map(decimalString).join('\\'));

function us(tag: number, v: number): Element {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return { tag, vr: 'US', value: b };
}

function encode(elements: Element[]): Buffer {
  const parts: Buffer[] = [];
  for (const el of [...elements].sort((a, b) => a.tag - b.tag)) {
    const long = LONG_VRS.has(el.vr);
    const head = Buffer.alloc(long ? 12 : 8);
    head.writeUInt16LE(el.tag >>> 16, 0);
    head.writeUInt16LE(el.tag & 0xffff, 2);
    head.write(el.vr, 4, 'latin1');
    if (long) head.writeUInt32LE(el.value.length, 8);
    else {
      if (el.value.length > 0xffff)
        throw new ImagingError('INVALID_ARGUMENT', `DICOM element ${el.tag.toString(16)} is too long`);
      head.writeUInt16LE(el.value.length, 6);
    }
    parts.push(head, el.value);
  }
  return Buffer.concat(parts);
}

/** A sequence (defined lengths) of items. */
function sequence(tag: number, items: Element[][]): Element {
  const parts: Buffer[] = [];
  for (const item of items) {
    const body = encode(item);
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0xfffe, 0);
    head.writeUInt16LE(0xe000, 2);
    head.writeUInt32LE(body.length, 4);
    parts.push(head, body);
  }
  return { tag, vr: 'SQ', value: Buffer.concat(parts) };
}

/**
 * RescaleSlope/Intercept that hold the volume's values in int16: slope 1 when the values are
 * integers in range (and for CT, whose HU round to the nearest unit); intercept 0 for PET (as the
 * PET image module requires); otherwise the range spread over [-32767, 32767].
 */
function rescaleFor(data: Float32Array, modality: DicomWriteOptions['modality']) {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let integers = true;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isFinite(v))
      throw new ImagingError('NON_FINITE_VOXELS', `voxel ${i} is ${v}; DICOM cannot hold it`);
    if (v < min) min = v;
    if (v > max) max = v;
    if (integers && !Number.isInteger(v)) integers = false;
  }
  const fits = min >= -32768 && max <= 32767;
  if (fits && (integers || modality === 'CT')) return { slope: 1, intercept: 0 };
  if (modality === 'PT') {
    const absMax = Math.max(Math.abs(min), Math.abs(max));
    return { slope: absMax > 0 ? Number(decimalString(absMax / 32767)) : 1, intercept: 0 };
  }
  const intercept = Number(decimalString((min + max) / 2));
  const slope = max > min ? Number(decimalString((max - min) / 65534)) : 1;
  return { slope, intercept };
}

/** The volume's DICOM geometry: LPS direction cosines, spacings and each slice's position. */
function geometry(vol: Volume) {
  const a = vol.affine;
  // RAS -> LPS: negate the first two rows.
  const col = (c: number) => [-a[c], -a[4 + c], a[8 + c]];
  const norm = (v: number[]) => Math.hypot(v[0], v[1], v[2]);
  const c0 = col(0);
  const c1 = col(1);
  const c2 = col(2);
  const colSpacing = norm(c0);
  const rowSpacing = norm(c1);
  const thickness = norm(c2);
  if (!(colSpacing > 0 && rowSpacing > 0 && thickness > 0))
    throw new ImagingError('INVALID_ARGUMENT', 'the volume affine has a zero-length axis');
  const rowDir = c0.map((v) => v / colSpacing);
  const colDir = c1.map((v) => v / rowSpacing);
  const dot = rowDir[0] * colDir[0] + rowDir[1] * colDir[1] + rowDir[2] * colDir[2];
  if (Math.abs(dot) > 1e-4)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      'the volume affine shears its x and y axes; DICOM slices need perpendicular rows and columns',
    );
  const origin = [-a[3], -a[7], a[11]];
  const position = (k: number) => [0, 1, 2].map((r) => origin[r] + k * c2[r]);
  const normal = [
    rowDir[1] * colDir[2] - rowDir[2] * colDir[1],
    rowDir[2] * colDir[0] - rowDir[0] * colDir[2],
    rowDir[0] * colDir[1] - rowDir[1] * colDir[0],
  ];
  return { rowDir, colDir, rowSpacing, colSpacing, thickness, position, normal };
}

function today(): { date: string; time: string } {
  const iso = new Date().toISOString();
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}

/**
 * Writes a volume as a DICOM series, one file per axial slice (`IM0001.dcm`, ... in `dir`):
 * Part 10 files (preamble, "DICM", group 0002) in explicit VR little endian, with
 * ImagePositionPatient, ImageOrientationPatient, PixelSpacing and SliceThickness from the
 * affine (RAS converted to DICOM's LPS), int16 pixels with RescaleSlope/Intercept holding the
 * value range (see rescaleFor), and for PET the dose tags (PatientWeight, the
 * RadiopharmaceuticalInformationSequence, Units, DecayCorrection, SeriesTime). Returns the files
 * and the series UID.
 */
export async function writeDicomSeries(
  vol: Volume,
  dir: string,
  opts: DicomWriteOptions,
): Promise<{ files: string[]; seriesInstanceUid: string }> {
  const { modality } = opts;
  if (!(modality in SOP_CLASS))
    throw new ImagingError('INVALID_ARGUMENT', `modality "${modality}" is not one of MR, CT, PT`);
  const [nx, ny, nz] = vol.dims;
  if (nx > 0xffff || ny > 0xffff || nx * ny * nz !== vol.data.length)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `a ${vol.dims.join('x')} volume with ${vol.data.length} voxels cannot be written as DICOM`,
    );
  const g = geometry(vol);
  const { slope, intercept } = rescaleFor(vol.data, modality);
  const patientId = opts.patientId ?? 'ANONYMOUS';
  const seriesUid = opts.seriesInstanceUid ?? newUid();
  const studyUid = uidFrom(`fedsynth study:${patientId}`);
  const frameUid = uidFrom(`fedsynth frame:${patientId}`);
  const now = today();
  const pet = opts.pet;
  const seriesTime = pet?.scanTime ?? now.time;
  const common: Element[] = [
    text(0x00080008, 'CS', 'ORIGINAL\\PRIMARY\\AXIAL'),
    text(0x00080016, 'UI', SOP_CLASS[modality]),
    text(0x00080020, 'DA', now.date),
    text(0x00080021, 'DA', now.date),
    text(0x00080022, 'DA', now.date),
    text(0x00080030, 'TM', seriesTime),
    text(0x00080031, 'TM', seriesTime),
    text(0x00080032, 'TM', seriesTime),
    text(0x00080060, 'CS', modality),
    text(0x00080070, 'LO', 'fedsynth'),
    text(0x0008103e, 'LO', opts.seriesDescription),
    text(0x00100010, 'PN', patientId),
    text(0x00100020, 'LO', patientId),
    ds(0x00180050, [g.thickness]),
    ds(0x00180088, [g.thickness]),
    text(0x0020000d, 'UI', studyUid),
    text(0x0020000e, 'UI', seriesUid),
    text(0x00200010, 'SH', '1'),
    text(0x00200011, 'IS', '1'),
    ds(0x00200037, [...g.rowDir, ...g.colDir]),
    text(0x00200052, 'UI', frameUid),
    us(0x00280002, 1),
    text(0x00280004, 'CS', 'MONOCHROME2'),
    us(0x00280010, ny),
    us(0x00280011, nx),
    ds(0x00280030, [g.rowSpacing, g.colSpacing]),
    us(0x00280100, 16),
    us(0x00280101, 16),
    us(0x00280102, 15),
    us(0x00280103, 1),
    ds(0x00281052, [intercept]),
    ds(0x00281053, [slope]),
  ];
  if (modality === 'CT') common.push(text(0x00281054, 'LO', 'HU'));
  if (modality === 'PT') {
    common.push(
      us(0x00540081, nz),
      text(0x00541000, 'CS', 'STATIC\\IMAGE'),
      text(0x00541001, 'CS', pet?.units ?? 'BQML'),
      text(0x00541002, 'CS', 'EMISSION'),
      text(0x00541102, 'CS', pet?.decayCorrection ?? 'START'),
    );
    if (pet) {
      common.push(ds(0x00101030, [pet.weightKg]));
      const item: Element[] = [ds(0x00181074, [pet.injectedDoseBq])];
      if (pet.injectionTime !== undefined) item.push(text(0x00181072, 'TM', pet.injectionTime));
      if (pet.halfLifeS !== undefined) item.push(ds(0x00181075, [pet.halfLifeS]));
      common.push(sequence(0x00540016, [item]));
    }
  }
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const plane = nx * ny;
  for (let k = 0; k < nz; k++) {
    const sopUid = newUid();
    const pixels = Buffer.alloc(2 * plane);
    for (let i = 0; i < plane; i++) {
      const q = Math.round((vol.data[k * plane + i] - intercept) / slope);
      pixels.writeInt16LE(Math.max(-32768, Math.min(32767, q)), 2 * i);
    }
    const pos = g.position(k);
    const body = encode([
      ...common,
      text(0x00080018, 'UI', sopUid),
      text(0x00200013, 'IS', String(k + 1)),
      ds(0x00200032, pos),
      ds(0x00201041, [pos[0] * g.normal[0] + pos[1] * g.normal[1] + pos[2] * g.normal[2]]),
      { tag: 0x7fe00010, vr: 'OW', value: pixels },
    ]);
    const meta = encode([
      { tag: 0x00020001, vr: 'OB', value: Buffer.from([0, 1]) },
      text(0x00020002, 'UI', SOP_CLASS[modality]),
      text(0x00020003, 'UI', sopUid),
      text(0x00020010, 'UI', EXPLICIT_VR_LE),
      text(0x00020012, 'UI', IMPLEMENTATION_CLASS_UID),
      text(0x00020013, 'SH', 'FEDSYNTH'),
    ]);
    const groupLength = encode([{ tag: 0x00020000, vr: 'UL', value: Buffer.alloc(4) }]);
    groupLength.writeUInt32LE(meta.length, 8);
    const file = join(dir, `IM${String(k + 1).padStart(4, '0')}.dcm`);
    await writeFile(
      file,
      Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, meta, body]),
    );
    files.push(file);
  }
  return { files, seriesInstanceUid: seriesUid };
}
