/**
 * A site's figures inside its masked vector (the federation's `privacy.secureMetrics`): the vector
 * a site masks is [model update (n values), one slot per figure], so the coordinator learns only
 * the weighted mean of each figure over the round's survivors, never one site's figure.
 *
 * Encoding: a figure v with the slot's range [lo, hi] becomes
 *   x = -c + 2c (clamp(v, lo, hi) - lo) / (hi - lo)   in [-c, c],
 * c the round's quantization clip, so secure aggregation's fixed-point encoding (libs/secure-agg
 * quantize.ts) carries it like any update value, with the site's weight. Decoding maps the
 * unmasked weighted mean x̄ back: lo + (x̄ + c) (hi - lo) / (2c), which is the weighted mean of the
 * (clamped) figures, since the map is affine.
 *
 * Resolution: secure aggregation bounds |x̄ - exact mean| by its errorBound e = 3c|S| / ((Q-1) B)
 * (|S| survivors, Q levels, B the sum of weight / maxWeight); a figure is then within
 *   e (hi - lo) / (2c) = 1.5 (hi - lo) |S| / ((Q-1) B)
 * of the weighted mean of the sites' figures. With every site at maxWeight (B = |S|) that is
 * 1.5 (hi - lo) / (Q-1), e.g. 0.09 HU over the CT MAE range at Q = 65536; sites far below
 * maxWeight lose resolution in proportion (1/100 of maxWeight: 9 HU), as their model updates do,
 * and a group figure (below) about doubles it. The slots and the unmasked mean are float32,
 * which adds at most c 2^-23 to e (negligible beside it).
 *
 * Figures a site may lack (no validation slices, no memorization check) come in groups with a
 * presence slot (1 when the site measured the group, else 0, and the group's slots 0): a group's
 * figure is decoded as mean(p v) / mean(p), the weighted mean over the sites that measured it,
 * within (e_v + max(|lo|, |hi|) e_p) / mean(p). A NaN figure leaves its whole group out (with a
 * warning) rather than poisoning the sum; a NaN or missing figure without a group is refused.
 */

/** What each figure a site can send is: a presence flag, a figure of a group, or a plain figure. */
export const SECURE_FIGURES = {
  /** Mean training loss of the round's last quarter of local steps (this round). */
  train_loss: {},
  /** 1 when the site scored the round's starting model on at least one validation slice. */
  evaluated: { presence: true },
  /** The round's starting model on the site's validation split (HU for CT, else 0..1). */
  mae: { per: 'evaluated' },
  psnr: { per: 'evaluated' },
  ssim: { per: 'evaluated' },
  /** 1 when the site ran the memorization check (it has training slices to compare with). */
  nearest_checked: { presence: true },
  /** Mean RMS distance of synthesized / real validation slices to the nearest training slice. */
  nearest_synth: { per: 'nearest_checked' },
  nearest_real: { per: 'nearest_checked' },
} as const satisfies Record<string, { presence?: true; per?: string }>;

export type SecureFigure = keyof typeof SECURE_FIGURES;

/** One figure's place in the masked vector: its name and the range it is encoded over. */
export interface MetricSlot {
  name: string;
  lo: number;
  hi: number;
}

/** What a site measured; a group whose figures are missing is sent as absent. */
export type SiteFigures = Partial<Record<SecureFigure, number>>;

/** A decoded global figure and the bound on its distance to the exact weighted mean. */
export interface DecodedFigure {
  value: number;
  bound: number;
}

/** The width of the CT window MAE is scored in ([-1024, 3000] HU), the largest CT MAE. */
const CT_MAE_MAX = 4024;

const isKnown = (name: string): name is SecureFigure => Object.hasOwn(SECURE_FIGURES, name);
const presenceOf = (name: SecureFigure): SecureFigure | null =>
  'per' in SECURE_FIGURES[name] ? (SECURE_FIGURES[name] as { per: SecureFigure }).per : null;
const isPresence = (name: SecureFigure): boolean => 'presence' in SECURE_FIGURES[name];

/**
 * The slots a coordinator asks for: every figure, with ranges for the task's target (MAE in HU
 * for CT, on the normalized 0..1 scale for MR and PET; PSNR 0..100 dB; SSIM -1..1; the
 * memorization distances 0..2 on the model's [-1, 1] scale; the training loss 0..10).
 */
export function secureMetricsLayout(target: string): MetricSlot[] {
  return [
    { name: 'train_loss', lo: 0, hi: 10 },
    { name: 'evaluated', lo: 0, hi: 1 },
    { name: 'mae', lo: 0, hi: target === 'ct' ? CT_MAE_MAX : 1 },
    { name: 'psnr', lo: 0, hi: 100 },
    { name: 'ssim', lo: -1, hi: 1 },
    { name: 'nearest_checked', lo: 0, hi: 1 },
    { name: 'nearest_synth', lo: 0, hi: 2 },
    { name: 'nearest_real', lo: 0, hi: 2 },
  ];
}

/**
 * Why a site cannot fill these slots (a figure it does not know, a bad range, a group without its
 * presence slot, no room left for the model in a vector of `vectorLength`), or null when it can.
 */
export function layoutProblem(slots: readonly MetricSlot[], vectorLength?: number): string | null {
  const seen = new Set<string>();
  for (const s of slots) {
    if (!isKnown(s.name))
      return `unknown figure "${s.name}" (this agent sends ${Object.keys(SECURE_FIGURES).join(', ')}): upgrade the agent`;
    if (seen.has(s.name)) return `figure "${s.name}" is listed twice`;
    seen.add(s.name);
    if (!(Number.isFinite(s.lo) && Number.isFinite(s.hi) && s.lo < s.hi))
      return `figure "${s.name}": range [${s.lo}, ${s.hi}] is not a finite interval`;
    if (isPresence(s.name) && !(s.lo <= 0 && s.hi >= 1))
      return `figure "${s.name}": a presence flag's range must hold 0 and 1, not [${s.lo}, ${s.hi}]`;
    const p = presenceOf(s.name);
    if (p && !(s.lo <= 0 && s.hi >= 0))
      return `figure "${s.name}": its range [${s.lo}, ${s.hi}] must hold 0 (sent when the site lacks it)`;
  }
  for (const s of slots) {
    const p = presenceOf(s.name as SecureFigure);
    if (p && !seen.has(p)) return `figure "${s.name}" needs its presence flag "${p}" in the layout`;
  }
  if (vectorLength !== undefined && !(vectorLength > slots.length))
    return `a vector of ${vectorLength} values leaves no room for the model beside ${slots.length} figures`;
  return null;
}

/** Where encodeFigures reports a clamped figure or a group it leaves out. */
export type FigureWarning = (message: string, fields: Record<string, unknown>) => void;

/**
 * A site's slot values, in layout order, each in [-clip, clip] (see the file comment). Throws a
 * RangeError for a layout it cannot fill, or for a missing or NaN figure that has no group.
 */
export function encodeFigures(
  slots: readonly MetricSlot[],
  figures: SiteFigures,
  clip: number,
  warn: FigureWarning = () => undefined,
): Float32Array {
  const problem = layoutProblem(slots);
  if (problem) throw new RangeError(`cannot encode the figures: ${problem}`);
  if (!(Number.isFinite(clip) && clip > 0))
    throw new RangeError(`clip must be a positive number, got ${clip}`);
  const has = (name: SecureFigure) => figures[name] !== undefined && !Number.isNaN(figures[name]);
  // A group is present when each of its figures in the layout is a number (not NaN).
  const present = new Map<SecureFigure, boolean>();
  for (const s of slots) {
    const name = s.name as SecureFigure;
    if (isPresence(name)) {
      const members = slots.filter((m) => presenceOf(m.name as SecureFigure) === name);
      const ok = members.every((m) => has(m.name as SecureFigure));
      const nan = members.filter((m) => Number.isNaN(figures[m.name as SecureFigure]));
      if (nan.length)
        warn(`a figure is NaN: the group "${name}" is left out of the sum`, {
          figures: nan.map((m) => m.name),
        });
      present.set(name, ok);
    }
  }
  const out = new Float32Array(slots.length);
  slots.forEach((s, j) => {
    const name = s.name as SecureFigure;
    const group = presenceOf(name);
    let v: number;
    if (isPresence(name)) v = present.get(name) ? 1 : 0;
    else if (group) v = present.get(group) ? figures[name]! : 0;
    else {
      if (!has(name))
        throw new RangeError(
          `figure "${name}" is ${figures[name]}: it has no presence flag, so it cannot be left out of the sum`,
        );
      v = figures[name]!;
    }
    if (v < s.lo || v > s.hi) {
      warn(`figure "${name}" is outside its range: clamped`, { figure: name, value: v, lo: s.lo, hi: s.hi });
      v = v < s.lo ? s.lo : s.hi;
    }
    const x = -clip + (2 * clip * (v - s.lo)) / (s.hi - s.lo);
    out[j] = Math.max(-clip, Math.min(clip, x));
  });
  return out;
}

/**
 * The global figures from the unmasked weighted means of the slots (`means`, layout order) and
 * secure aggregation's errorBound: each figure's weighted mean over the sites that measured it,
 * clamped to its range, with its bound (see the file comment). A group no site measured
 * (its presence share not above its own bound) is left out; presence flags come back as shares.
 */
export function decodeFigures(
  slots: readonly MetricSlot[],
  means: ArrayLike<number>,
  clip: number,
  errorBound: number,
): Map<string, DecodedFigure> {
  if (means.length !== slots.length)
    throw new RangeError(`${means.length} slot values for a layout of ${slots.length} figures`);
  const problem = layoutProblem(slots);
  if (problem) throw new RangeError(`cannot decode the figures: ${problem}`);
  const raw = new Map<string, DecodedFigure & { lo: number; hi: number }>();
  // float32 slots and mean: each rounded by at most c 2^-24.
  const e = errorBound + clip * 2 ** -23;
  slots.forEach((s, j) => {
    const scale = (s.hi - s.lo) / (2 * clip);
    raw.set(s.name, { value: s.lo + (means[j] + clip) * scale, bound: e * scale, lo: s.lo, hi: s.hi });
  });
  const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));
  const out = new Map<string, DecodedFigure>();
  for (const [name, f] of raw) {
    const group = presenceOf(name as SecureFigure);
    if (!group) {
      out.set(name, { value: clamp(f.value, f.lo, f.hi), bound: f.bound });
      continue;
    }
    const p = raw.get(group)!;
    if (!(p.value > p.bound)) continue;
    const worst = Math.max(Math.abs(f.lo), Math.abs(f.hi));
    out.set(name, {
      value: clamp(f.value / p.value, f.lo, f.hi),
      bound: (f.bound + worst * p.bound) / p.value,
    });
  }
  return out;
}

/** Whether a figure name is a presence flag (a share of sites, not a measurement). */
export function isPresenceFlag(name: string): boolean {
  return isKnown(name) && isPresence(name);
}
