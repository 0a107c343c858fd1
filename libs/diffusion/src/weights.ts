/**
 * Weights as safetensors and as one canonical flat vector, without tfjs: the coordinator
 * aggregates these and never loads a tensor library.
 *
 * safetensors layout: 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { ... } }`, then the raw
 * little-endian tensor bytes, contiguous and in offset order.
 */

/** One named float32 array with its shape. */
export interface NamedArray {
  name: string;
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

/** Name and shape of one tensor, in canonical (sorted-name) order when produced by layoutOf. */
export interface TensorLayout {
  name: string;
  shape: number[];
}

/** A problem with a weights file or with weights that do not match a model; names the tensor. */
export class WeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsError';
  }
}

const MAX_HEADER = 100 * 1024 * 1024;

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Encodes arrays (written in sorted-name order) and string metadata as safetensors bytes. */
export function encodeSafetensors(
  arrays: readonly NamedArray[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const sorted = [...arrays].sort(byName);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const a of sorted) {
    if (seen.has(a.name)) throw new WeightsError(`duplicate tensor name "${a.name}"`);
    seen.add(a.name);
    if (a.data.length !== product(a.shape)) {
      throw new WeightsError(
        `tensor "${a.name}": shape [${a.shape}] needs ${product(a.shape)} values, got ${a.data.length}`,
      );
    }
    header[a.name] = { dtype: 'F32', shape: a.shape, data_offsets: [offset, offset + a.data.length * 4] };
    offset += a.data.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8); // keep tensor data 8-byte aligned
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let o = 8 + headerBytes.length;
  for (const a of sorted) {
    out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), o);
    o += a.data.byteLength;
  }
  return out;
}

/** Decodes safetensors bytes (F32 tensors only), checking the header strictly; errors name `source`. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = 'safetensors',
): { arrays: NamedArray[]; metadata: Record<string, string> } {
  if (bytes.length < 8)
    throw new WeightsError(`${source}: ${bytes.length} bytes is too short for a safetensors file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > bytes.length)
    throw new WeightsError(`${source}: header length ${n} does not fit in ${bytes.length} bytes`);
  let header: Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    throw new WeightsError(`${source}: header is not valid JSON`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new WeightsError(`${source}: header must be a JSON object`);
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata = (header.__metadata__ as Record<string, string>) ?? {};
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as [
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] },
  ][];
  entries.sort((a, b) => a[1].data_offsets?.[0] - b[1].data_offsets?.[0]);
  let expected = 0;
  const arrays: NamedArray[] = [];
  for (const [name, info] of entries) {
    if (info.dtype !== 'F32')
      throw new WeightsError(`${source}: tensor "${name}" has dtype ${info.dtype}; only F32 is supported`);
    if (!Array.isArray(info.shape) || info.shape.some((d) => !Number.isInteger(d) || d < 0))
      throw new WeightsError(`${source}: tensor "${name}" has an invalid shape`);
    const [b, e] = info.data_offsets ?? [];
    if (!Number.isInteger(b) || !Number.isInteger(e) || b !== expected || e < b || e > dataLength) {
      throw new WeightsError(
        `${source}: tensor "${name}" has data offsets [${b}, ${e}] outside the data or not contiguous`,
      );
    }
    if (e - b !== product(info.shape) * 4)
      throw new WeightsError(
        `${source}: tensor "${name}" holds ${e - b} bytes but shape [${info.shape}] needs ${product(info.shape) * 4}`,
      );
    const copy = new Uint8Array(e - b);
    copy.set(bytes.subarray(dataStart + b, dataStart + e));
    arrays.push({ name, dtype: 'F32', shape: info.shape, data: new Float32Array(copy.buffer) });
    expected = e;
  }
  if (expected !== dataLength)
    throw new WeightsError(`${source}: ${dataLength - expected} bytes of data belong to no tensor`);
  return { arrays: arrays.sort(byName), metadata };
}

/** Names and shapes in canonical (sorted-name) order. */
export function layoutOf(arrays: readonly NamedArray[]): TensorLayout[] {
  return [...arrays].sort(byName).map((a) => ({ name: a.name, shape: [...a.shape] }));
}

/** All values in one Float32Array, tensors concatenated in sorted-name order. */
export function flattenCanonical(arrays: readonly NamedArray[]): Float32Array {
  const sorted = [...arrays].sort(byName);
  const out = new Float32Array(sorted.reduce((a, t) => a + t.data.length, 0));
  let o = 0;
  for (const t of sorted) {
    out.set(t.data, o);
    o += t.data.length;
  }
  return out;
}

/** Splits a canonical flat vector back into named arrays of the given layout. */
export function unflattenCanonical(flat: Float32Array, layout: readonly TensorLayout[]): NamedArray[] {
  const sorted = [...layout].sort(byName);
  const total = sorted.reduce((a, t) => a + product(t.shape), 0);
  if (flat.length !== total)
    throw new WeightsError(`flat vector has ${flat.length} values; the layout needs ${total}`);
  let o = 0;
  return sorted.map((t) => {
    const n = product(t.shape);
    const data = flat.slice(o, o + n);
    o += n;
    return { name: t.name, dtype: 'F32' as const, shape: [...t.shape], data };
  });
}

/** Checks that `arrays` has exactly the names and shapes of `expected`, naming every difference. */
export function checkLayout(
  arrays: readonly NamedArray[],
  expected: readonly TensorLayout[],
  source = 'weights',
): void {
  const have = new Map(arrays.map((a) => [a.name, a]));
  const problems: string[] = [];
  for (const e of expected) {
    const a = have.get(e.name);
    if (!a) problems.push(`missing tensor "${e.name}" [${e.shape}]`);
    else if (a.shape.length !== e.shape.length || a.shape.some((d, i) => d !== e.shape[i])) {
      problems.push(`tensor "${e.name}" has shape [${a.shape}], the model expects [${e.shape}]`);
    }
    have.delete(e.name);
  }
  for (const name of have.keys()) problems.push(`unexpected tensor "${name}"`);
  if (problems.length)
    throw new WeightsError(
      `${source} do not match the model: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? `; and ${problems.length - 10} more` : ''}`,
    );
}
