/** Beta schedules of the forward (noising) process, as plain functions of T (a registry, as in MONAI). */
export type ScheduleName = 'linear' | 'scaled-linear' | 'cosine';

export const SCHEDULES: Record<
  ScheduleName,
  (T: number, betaStart?: number, betaEnd?: number) => Float64Array
> = {
  /** Linearly spaced betas (Ho et al. 2020): 1e-4 .. 2e-2 by default. */
  linear: (T, b0 = 1e-4, b1 = 2e-2) =>
    Float64Array.from({ length: T }, (_, i) => b0 + ((b1 - b0) * i) / (T - 1)),
  /** Betas whose square roots are linearly spaced (latent diffusion): 0.0015 .. 0.0195 by default. */
  'scaled-linear': (T, b0 = 0.0015, b1 = 0.0195) =>
    Float64Array.from(
      { length: T },
      (_, i) => (Math.sqrt(b0) + ((Math.sqrt(b1) - Math.sqrt(b0)) * i) / (T - 1)) ** 2,
    ),
  /** Cosine schedule (Nichol & Dhariwal 2021), s = 0.008, betas capped at 0.999. */
  cosine: (T) => {
    const s = 0.008;
    const f = (t: number) => Math.cos(((t / T + s) / (1 + s)) * (Math.PI / 2)) ** 2;
    return Float64Array.from({ length: T }, (_, i) => Math.min(1 - f(i + 1) / f(i), 0.999));
  },
};

/** A noise schedule with its cumulative products. */
export interface NoiseSchedule {
  name: ScheduleName;
  T: number;
  betas: Float64Array;
  alphasCumprod: Float64Array;
}

/** Builds a schedule of T steps (1000 by default). */
export function makeSchedule(name: ScheduleName = 'cosine', T = 1000): NoiseSchedule {
  const make = SCHEDULES[name];
  if (!make) throw new RangeError(`unknown schedule "${name}"; choose ${Object.keys(SCHEDULES).join(', ')}`);
  if (!Number.isInteger(T) || T < 2) throw new RangeError(`T must be an integer >= 2, got ${T}`);
  const betas = make(T);
  const alphasCumprod = new Float64Array(T);
  let acc = 1;
  for (let i = 0; i < T; i++) {
    acc *= 1 - betas[i];
    alphasCumprod[i] = acc;
  }
  return { name, T, betas, alphasCumprod };
}
