import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ImagingError } from './errors';
import { spacingOf, type Volume, voxelCount } from './volume';

/** NIfTI datatype codes this library reads (and, for float32/int16, writes). */
const DATATYPES: Record<number, { name: string; bytes: number }> = {
  2: { name: 'uint8', bytes: 1 },
  4: { name: 'int16', bytes: 2 },
  8: { name: 'int32', bytes: 4 },
  16: { name: 'float32', bytes: 4 },
  64: { name: 'float64', bytes: 8 },
  256: { name: 'int8', bytes: 1 },
  512: { name: 'uint16', bytes: 2 },
  768: { name: 'uint32', bytes: 4 },
};

interface Header {
  version: 1 | 2;
  littleEndian: boolean;
  dims: number[];
  datatype: number;
  pixdim: number[];
  voxOffset: number;
  slope: number;
  inter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: number[];
}

function fail(file: string, code: ConstructorParameters<typeof ImagingError>[0], problem: string): never {
  throw new ImagingError(code, `${file}: ${problem}`, file);
}

function parseHeader(buf: Buffer, file: string): Header {
  if (buf.length < 348)
    fail(file, 'TRUNCATED_FILE', `only ${buf.length} bytes; a NIfTI header needs at least 348`);
  const le348 = buf.readInt32LE(0);
  const be348 = buf.readInt32BE(0);
  let version: 1 | 2;
  let le: boolean;
  if (le348 === 348 || be348 === 348) {
    version = 1;
    le = le348 === 348;
  } else if (le348 === 540 || be348 === 540) {
    version = 2;
    le = le348 === 540;
  } else {
    fail(file, 'CORRUPT_FILE', `not a NIfTI file (header size field is ${le348})`);
  }
  const i16 = (o: number) => (le ? buf.readInt16LE(o) : buf.readInt16BE(o));
  const i32 = (o: number) => (le ? buf.readInt32LE(o) : buf.readInt32BE(o));
  const f32 = (o: number) => (le ? buf.readFloatLE(o) : buf.readFloatBE(o));
  const f64 = (o: number) => (le ? buf.readDoubleLE(o) : buf.readDoubleBE(o));
  const i64 = (o: number) => Number(le ? buf.readBigInt64LE(o) : buf.readBigInt64BE(o));
  if (version === 1) {
    const magic = buf.toString('latin1', 344, 347);
    if (magic !== 'n+1' && magic !== 'ni1') fail(file, 'CORRUPT_FILE', `bad NIfTI-1 magic "${magic}"`);
    if (magic === 'ni1')
      fail(file, 'UNSUPPORTED_FORMAT', 'two-file NIfTI (.hdr/.img) is not supported; convert to .nii');
    return {
      version,
      littleEndian: le,
      dims: Array.from({ length: 8 }, (_, k) => i16(40 + 2 * k)),
      datatype: i16(70),
      pixdim: Array.from({ length: 8 }, (_, k) => f32(76 + 4 * k)),
      voxOffset: Math.floor(f32(108)),
      slope: f32(112),
      inter: f32(116),
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: Array.from({ length: 12 }, (_, k) => f32(280 + 4 * k)),
    };
  }
  if (buf.length < 540) fail(file, 'TRUNCATED_FILE', `only ${buf.length} bytes; a NIfTI-2 header needs 540`);
  const magic = buf.toString('latin1', 4, 7);
  if (magic !== 'n+2') fail(file, 'CORRUPT_FILE', `bad NIfTI-2 magic "${magic}"`);
  return {
    version,
    littleEndian: le,
    dims: Array.from({ length: 8 }, (_, k) => i64(16 + 8 * k)),
    datatype: i16(12),
    pixdim: Array.from({ length: 8 }, (_, k) => f64(104 + 8 * k)),
    voxOffset: i64(168),
    slope: f64(176),
    inter: f64(184),
    qformCode: i32(344),
    sformCode: i32(348),
    quatern: [f64(352), f64(360), f64(368)],
    qoffset: [f64(376), f64(384), f64(392)],
    srow: Array.from({ length: 12 }, (_, k) => f64(400 + 8 * k)),
  };
}

/** The voxel-to-world affine: sform when set, else qform, else a diagonal of the voxel sizes. */
function affineOf(h: Header): Float64Array {
  const a = new Float64Array(16);
  a[15] = 1;
  if (h.sformCode > 0) {
    a.set(h.srow.slice(0, 12));
    return a;
  }
  const [dx, dy, dz] = [h.pixdim[1], h.pixdim[2], h.pixdim[3]].map((v) => (v > 0 ? v : 1));
  if (h.qformCode > 0) {
    const [b, c, d] = h.quatern;
    const a0 = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const qfac = h.pixdim[0] < 0 ? -1 : 1;
    const R = [
      [a0 * a0 + b * b - c * c - d * d, 2 * (b * c - a0 * d), 2 * (b * d + a0 * c)],
      [2 * (b * c + a0 * d), a0 * a0 + c * c - b * b - d * d, 2 * (c * d - a0 * b)],
      [2 * (b * d - a0 * c), 2 * (c * d + a0 * b), a0 * a0 + d * d - b * b - c * c],
    ];
    const z = [dx, dy, dz * qfac];
    for (let r = 0; r < 3; r++) {
      for (let col = 0; col < 3; col++) a[4 * r + col] = R[r][col] * z[col];
      a[4 * r + 3] = h.qoffset[r];
    }
    return a;
  }
  a[0] = dx;
  a[5] = dy;
  a[10] = dz;
  return a;
}

/** Decompresses when the bytes are gzip; names the file when the stream is cut short or corrupt. */
function maybeGunzip(raw: Buffer, file: string): Buffer {
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (err) {
      const msg = (err as Error).message;
      fail(
        file,
        /unexpected end/i.test(msg) ? 'TRUNCATED_FILE' : 'CORRUPT_FILE',
        `gzip data is ${/unexpected end/i.test(msg) ? 'truncated' : 'corrupt'} (${msg})`,
      );
    }
  }
  return raw;
}

/** Header facts a Volume does not carry, for checks that judge the file rather than the image. */
export interface NiftiHeaderInfo {
  /** dim[0]: how many of dim[1..7] are used. */
  ndim: number;
  /** pixdim[1..3] as stored (voxel sizes). */
  pixdim: [number, number, number];
  /** What the affine was built from: the sform, the qform, or pixdim alone (no orientation). */
  affineFrom: 'sform' | 'qform' | 'pixdim';
}

/** Parses NIfTI-1 or NIfTI-2 bytes (optionally gzipped) into a Float32 volume with scaling applied. */
export function parseNifti(raw: Buffer, file = '<buffer>'): Volume {
  return parseNiftiWithHeader(raw, file).volume;
}

/** Like parseNifti, and also returns the header facts the volume does not carry. */
export function parseNiftiWithHeader(
  raw: Buffer,
  file = '<buffer>',
): { volume: Volume; header: NiftiHeaderInfo } {
  const buf = maybeGunzip(raw, file);
  const h = parseHeader(buf, file);
  const ndim = h.dims[0];
  if (!(ndim >= 1 && ndim <= 7)) fail(file, 'CORRUPT_FILE', `dim[0] is ${ndim}; expected 1..7`);
  // Reading a zero or negative size as 1 would turn a broken header into a plausible thin image.
  for (let k = 1; k <= ndim; k++) {
    if (!(h.dims[k] >= 1))
      fail(
        file,
        'CORRUPT_FILE',
        `dim[${k}] is ${h.dims[k]}; with dim[0] = ${ndim}, dim[1..${ndim}] must each be at least 1`,
      );
  }
  for (let k = 4; k <= ndim; k++) {
    if (h.dims[k] > 1)
      fail(
        file,
        'UNSUPPORTED_FORMAT',
        `${ndim}D image (dim[${k}] = ${h.dims[k]}); only 3D volumes are supported`,
      );
  }
  const dims: [number, number, number] = [1, 2, 3].map((k) => (k <= ndim ? h.dims[k] : 1)) as [
    number,
    number,
    number,
  ];
  const dt = DATATYPES[h.datatype];
  if (!dt)
    fail(
      file,
      'UNSUPPORTED_FORMAT',
      `NIfTI datatype ${h.datatype} is not supported (uint8, int8, int16, uint16, int32, uint32, float32, float64 are)`,
    );
  const n = voxelCount(dims);
  const offset = h.voxOffset > 0 ? h.voxOffset : h.version === 1 ? 352 : 544;
  const need = offset + n * dt.bytes;
  if (buf.length < need) {
    fail(
      file,
      'TRUNCATED_FILE',
      `truncated: ${n} ${dt.name} voxels need ${need} bytes, the file has ${buf.length}`,
    );
  }
  const out = new Float32Array(n);
  const aligned = h.littleEndian && (buf.byteOffset + offset) % dt.bytes === 0;
  const src = aligned ? buf : Buffer.from(buf.subarray(offset, need));
  const base = aligned ? buf.byteOffset + offset : 0;
  if (!h.littleEndian) {
    const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const read: (o: number) => number = {
      1: (o: number) => (h.datatype === 256 ? dv.getInt8(o) : dv.getUint8(o)),
      2: (o: number) => (h.datatype === 4 ? dv.getInt16(o) : dv.getUint16(o)),
      4: (o: number) =>
        h.datatype === 16 ? dv.getFloat32(o) : h.datatype === 8 ? dv.getInt32(o) : dv.getUint32(o),
      8: (o: number) => dv.getFloat64(o),
    }[dt.bytes]!;
    for (let i = 0; i < n; i++) out[i] = read(i * dt.bytes);
  } else {
    const ab = src.buffer;
    const view =
      h.datatype === 2
        ? new Uint8Array(ab, base, n)
        : h.datatype === 256
          ? new Int8Array(ab, base, n)
          : h.datatype === 4
            ? new Int16Array(ab, base, n)
            : h.datatype === 512
              ? new Uint16Array(ab, base, n)
              : h.datatype === 8
                ? new Int32Array(ab, base, n)
                : h.datatype === 768
                  ? new Uint32Array(ab, base, n)
                  : h.datatype === 16
                    ? new Float32Array(ab, base, n)
                    : new Float64Array(ab, base, n);
    out.set(view);
  }
  // nibabel's rule: a zero or non-finite slope means "no scaling".
  if (
    Number.isFinite(h.slope) &&
    h.slope !== 0 &&
    !(h.slope === 1 && (h.inter === 0 || !Number.isFinite(h.inter)))
  ) {
    const s = h.slope;
    const b = Number.isFinite(h.inter) ? h.inter : 0;
    for (let i = 0; i < n; i++) out[i] = out[i] * s + b;
  }
  const affine = affineOf(h);
  return {
    volume: { data: out, dims, spacing: spacingOf(affine), affine },
    header: {
      ndim,
      pixdim: [h.pixdim[1], h.pixdim[2], h.pixdim[3]],
      affineFrom: h.sformCode > 0 ? 'sform' : h.qformCode > 0 ? 'qform' : 'pixdim',
    },
  };
}

/** Reads a `.nii` or `.nii.gz` file (NIfTI-1 or NIfTI-2) into a Float32 volume. */
export async function readNifti(path: string): Promise<Volume> {
  return (await readNiftiWithHeader(path)).volume;
}

/** Like readNifti, and also returns the header facts the volume does not carry. */
export async function readNiftiWithHeader(
  path: string,
): Promise<{ volume: Volume; header: NiftiHeaderInfo }> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${path}: cannot be read (${code ?? (err as Error).message})`,
      path,
    );
  }
  return parseNiftiWithHeader(raw, path);
}

/** Quaternion parameters (b, c, d), qfac and zooms of an affine, as NIfTI's qform stores them. */
function qformOf(affine: Float64Array): {
  quatern: [number, number, number];
  qfac: number;
  zooms: [number, number, number];
} {
  const zooms = spacingOf(affine);
  const R = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[4 * r + c] / (zooms[c] || 1)));
  const det =
    R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) -
    R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) +
    R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (let r = 0; r < 3; r++) R[r][2] = -R[r][2];
  const trace = R[0][0] + R[1][1] + R[2][2];
  let a: number;
  let b: number;
  let c: number;
  let d: number;
  if (trace > 0) {
    const s = Math.sqrt(trace + 1) * 2;
    a = 0.25 * s;
    b = (R[2][1] - R[1][2]) / s;
    c = (R[0][2] - R[2][0]) / s;
    d = (R[1][0] - R[0][1]) / s;
  } else if (R[0][0] > R[1][1] && R[0][0] > R[2][2]) {
    const s = Math.sqrt(1 + R[0][0] - R[1][1] - R[2][2]) * 2;
    a = (R[2][1] - R[1][2]) / s;
    b = 0.25 * s;
    c = (R[0][1] + R[1][0]) / s;
    d = (R[0][2] + R[2][0]) / s;
  } else if (R[1][1] > R[2][2]) {
    const s = Math.sqrt(1 + R[1][1] - R[0][0] - R[2][2]) * 2;
    a = (R[0][2] - R[2][0]) / s;
    b = (R[0][1] + R[1][0]) / s;
    c = 0.25 * s;
    d = (R[1][2] + R[2][1]) / s;
  } else {
    const s = Math.sqrt(1 + R[2][2] - R[0][0] - R[1][1]) * 2;
    a = (R[1][0] - R[0][1]) / s;
    b = (R[0][2] + R[2][0]) / s;
    c = (R[1][2] + R[2][1]) / s;
    d = 0.25 * s;
  }
  if (a < 0) [b, c, d] = [-b, -c, -d];
  return { quatern: [b, c, d], qfac, zooms };
}

/**
 * Encodes a volume as NIfTI-1 (sform and qform from its affine, units mm). `int16` rounds to the
 * nearest integer and, when values exceed the int16 range, stores a scale factor.
 */
export function encodeNifti(vol: Volume, opts: { datatype?: 'float32' | 'int16' } = {}): Buffer {
  const n = voxelCount(vol.dims);
  if (vol.data.length !== n)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `volume data has ${vol.data.length} voxels; dims ${vol.dims.join('x')} need ${n}`,
    );
  const int16 = opts.datatype === 'int16';
  const bytes = int16 ? 2 : 4;
  const buf = Buffer.alloc(352 + n * bytes);
  buf.writeInt32LE(348, 0);
  buf.writeInt8(0, 39);
  const dim = [3, vol.dims[0], vol.dims[1], vol.dims[2], 1, 1, 1, 1];
  dim.forEach((v, k) => {
    buf.writeInt16LE(v, 40 + 2 * k);
  });
  buf.writeInt16LE(int16 ? 4 : 16, 70);
  buf.writeInt16LE(bytes * 8, 72);
  const { quatern, qfac, zooms } = qformOf(vol.affine);
  [qfac, zooms[0], zooms[1], zooms[2], 1, 1, 1, 1].forEach((v, k) => {
    buf.writeFloatLE(v, 76 + 4 * k);
  });
  buf.writeFloatLE(352, 108);
  let slope = 1;
  let inter = 0;
  if (int16) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = vol.data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo < -32768 || hi > 32767 || !Number.isInteger(lo) || !Number.isInteger(hi)) {
      if (lo < -32768 || hi > 32767) {
        slope = (hi - lo) / 65535 || 1;
        inter = lo + 32768 * slope;
      }
    }
  }
  buf.writeFloatLE(slope, 112);
  buf.writeFloatLE(inter, 116);
  buf.writeUInt8(2 | 8, 123); // mm, seconds
  buf.writeInt16LE(1, 252); // qform: scanner
  buf.writeInt16LE(1, 254); // sform: scanner
  quatern.forEach((v, k) => {
    buf.writeFloatLE(v, 256 + 4 * k);
  });
  [vol.affine[3], vol.affine[7], vol.affine[11]].forEach((v, k) => {
    buf.writeFloatLE(v, 268 + 4 * k);
  });
  for (let k = 0; k < 12; k++) buf.writeFloatLE(vol.affine[k], 280 + 4 * k);
  buf.write('n+1\0', 344, 'latin1');
  if (int16) {
    const out = new Int16Array(buf.buffer, buf.byteOffset + 352, n);
    for (let i = 0; i < n; i++) out[i] = Math.round((vol.data[i] - inter) / slope);
  } else {
    new Float32Array(buf.buffer, buf.byteOffset + 352, n).set(vol.data);
  }
  return buf;
}

/** Writes a volume as `.nii.gz` (gzip when the path ends in .gz, plain .nii otherwise). */
export async function writeNifti(
  path: string,
  vol: Volume,
  opts: { datatype?: 'float32' | 'int16' } = {},
): Promise<void> {
  const raw = encodeNifti(vol, opts);
  await writeFile(path, path.endsWith('.gz') ? gzipSync(raw, { level: 4 }) : raw);
}
