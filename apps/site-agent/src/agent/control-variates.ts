import { decodeSafetensors, flattenCanonical } from '@fedsynth/diffusion/weights';

/**
 * The global control variate of a SCAFFOLD round, as the coordinator stores it (safetensors in the
 * model's tensor layout, metadata `fedsynth.control: scaffold`), in canonical order. Errors name
 * what is wrong: a blob that is not a control variate, or one with a value that is not finite.
 */
export function readControl(bytes: Uint8Array, source = 'control variate'): Float32Array {
  const { arrays, metadata } = decodeSafetensors(bytes, source);
  if (metadata['fedsynth.control'] !== 'scaffold')
    throw new Error(`${source}: not a SCAFFOLD control variate (no fedsynth.control in its metadata)`);
  const c = flattenCanonical(arrays);
  const bad = c.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new Error(`${source}: value ${bad} is ${c[bad]}`);
  return c;
}

/** x times `scale`, as a new vector (a control variate as it goes on the wire). */
export function scaled(x: Float32Array, scale: number): Float32Array {
  return Float32Array.from(x, (v) => v * scale);
}
