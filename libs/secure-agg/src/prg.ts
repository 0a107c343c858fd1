import { type Cipher, createCipheriv } from 'node:crypto';
import { abytes } from './bytes';

/** Elements per chunk: 1 MiB of Uint32, the size at which node:crypto's keystream is fastest. */
export const CHUNK_ELEMENTS = 262_144;
const ZERO = Buffer.alloc(CHUNK_ELEMENTS * 4);
const ZERO_IV = Buffer.alloc(16);

/**
 * A cryptographic pseudo-random generator: AES-256-CTR keystream under a 32-byte key (zero IV: every
 * key is derived for one purpose in one session and never reused), read as little-endian Uint32s.
 * Elements must be drawn in order; `skip` advances without returning.
 */
export class Prg {
  /** Keystream elements drawn by every Prg in this process (for benchmarks). */
  static elementsDrawn = 0;
  private readonly cipher: Cipher;
  private position = 0;

  constructor(key: Uint8Array) {
    abytes(key, 32, 'PRG key');
    this.cipher = createCipheriv('aes-256-ctr', key, ZERO_IV);
  }

  /** The next `count` (<= CHUNK_ELEMENTS) pseudo-random Uint32 values. */
  next(count: number): Uint32Array {
    if (count > CHUNK_ELEMENTS) {
      const out = new Uint32Array(count);
      for (let o = 0; o < count; o += CHUNK_ELEMENTS)
        out.set(this.next(Math.min(CHUNK_ELEMENTS, count - o)), o);
      return out;
    }
    const bytes = this.cipher.update(count === CHUNK_ELEMENTS ? ZERO : ZERO.subarray(0, count * 4));
    this.position += count;
    Prg.elementsDrawn += count;
    return new Uint32Array(bytes.buffer, bytes.byteOffset, count);
  }

  /** How many elements have been drawn so far. */
  get drawn(): number {
    return this.position;
  }
}

/** Little-endian host check: the Uint32 views above assume it (true on x86-64 and arm64). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** target[i] += sign * stream[i] (mod 2^32), for the next target.length elements of `prg`. */
export function addStream(target: Uint32Array, prg: Prg, sign: 1 | -1): void {
  for (let o = 0; o < target.length; o += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, target.length - o);
    const ks = prg.next(n);
    const t = n === target.length ? target : target.subarray(o, o + n);
    if (sign === 1) for (let i = 0; i < n; i++) t[i] += ks[i];
    else for (let i = 0; i < n; i++) t[i] -= ks[i];
  }
}

/** The first `length` elements of the stream of `key` (test vectors and small vectors). */
export function prgExpand(key: Uint8Array, length: number): Uint32Array {
  return new Prg(key).next(length);
}
