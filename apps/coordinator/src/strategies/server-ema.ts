/**
 * The weight the old average keeps when the server's moving average of the global weights takes
 * its update number `t` (0 for the first): min(decay, (1 + t) / (10 + t)), the warm-up the
 * trainer's own EMA uses, so that a federation's first rounds do not leave the average near the
 * initial model.
 */
export function serverEmaWeight(decay: number, t: number): number {
  if (!(decay >= 0 && decay < 1)) throw new RangeError(`server EMA decay must be in [0, 1), got ${decay}`);
  if (!(Number.isInteger(t) && t >= 0)) throw new RangeError(`update number must be a count, got ${t}`);
  return Math.min(decay, (1 + t) / (10 + t));
}

/** The next average: d * previous + (1 - d) * weights with d = serverEmaWeight(decay, t). */
export function serverEmaStep(
  previous: Float32Array,
  weights: Float32Array,
  decay: number,
  t: number,
): Float32Array {
  if (previous.length !== weights.length)
    throw new RangeError(`the average holds ${previous.length} values; the weights ${weights.length}`);
  const d = serverEmaWeight(decay, t);
  const out = new Float32Array(weights.length);
  for (let i = 0; i < out.length; i++) out[i] = d * previous[i] + (1 - d) * weights[i];
  return out;
}
