import { ensure, SecAggErrorCode } from './errors';

/** Checks that `value` is a Uint8Array of exactly `length` bytes; `title` names it in the error. */
export function abytes(value: unknown, length: number, title: string): asserts value is Uint8Array {
  ensure(value instanceof Uint8Array, SecAggErrorCode.BAD_LENGTH, `${title} must be a Uint8Array`);
  ensure(
    (value as Uint8Array).length === length,
    SecAggErrorCode.BAD_LENGTH,
    () => `${title} must be ${length} bytes, got ${(value as Uint8Array).length}`,
  );
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Big-endian 32-bit encoding of a non-negative integer. */
export function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, false);
  return out;
}

/** Reads a big-endian 32-bit integer at `offset`. */
export function readU32be(b: Uint8Array, offset: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(offset, false);
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** Length-prefixed encoding, so that concatenated fields can never be confused. */
export function lp(b: Uint8Array): Uint8Array {
  return concatBytes(u32be(b.length), b);
}

/** Constant-time equality of two byte arrays. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Lower-case hex of bytes. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Bytes from hex; throws on odd length or non-hex characters. */
export function fromHex(hex: string): Uint8Array {
  ensure(/^([0-9a-fA-F]{2})*$/.test(hex), SecAggErrorCode.INVALID_ARGUMENT, 'not a hex string');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Overwrites secret material with zeros once it is no longer needed. */
export function wipe(...arrays: Uint8Array[]): void {
  for (const a of arrays) a.fill(0);
}
