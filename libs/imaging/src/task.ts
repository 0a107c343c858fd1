import { ImagingError } from './errors';
import { MR_SCALES, type MrScale } from './mr-standardize';

/**
 * Image-to-image tasks: which modalities condition the model, which one it synthesizes, and how
 * each is brought to the model's [-1, 1] scale.
 *
 * - `ct`: HU window [-1024, 3000] mapped linearly; body mask where CT > -500 HU.
 * - MR (`mr`, `t1`, `t2`, `flair`): robust per-volume percentiles inside the body (0.5 %, 99.5 %),
 *   or, where the task says `mr=landmarks`, piecewise linear between eleven landmarks of the body's
 *   histogram onto a fixed standard scale (standardizeMr).
 * - `pet`: SUV (from the activity, the patient's weight and the injected dose), on a log scale
 *   log(1 + SUV) / log(1 + SUV_MAX), clipped.
 */
export const MODALITIES = ['mr', 't1', 't2', 'flair', 'pet', 'ct'] as const;
export type Modality = (typeof MODALITIES)[number];

/** How a modality's intensities are normalized and scored. */
export type IntensityKind = 'ct' | 'mr' | 'pet';

export function kindOf(m: Modality): IntensityKind {
  return m === 'ct' ? 'ct' : m === 'pet' ? 'pet' : 'mr';
}

export interface TaskSpec {
  /** Condition modalities, in channel order (one or more). */
  sources: Modality[];
  target: Modality;
  /**
   * 2.5D context: the k slices on each side of each source slice are extra condition channels
   * (0: 2D). Channels per source: 2k + 1, the centre slice first.
   */
  context: number;
  /**
   * How every MR volume of the task (sources and an MR target) is brought to [-1, 1]; absent means
   * `percentile`, the original mapping, so tasks and models from before the setting keep their
   * meaning. Only a task with an MR modality may set it.
   */
  mrScale?: MrScale;
}

/** The task the platform started with: MRI (SynthRAD2023's `mr`) to CT, 2D. */
export const DEFAULT_TASK: TaskSpec = { sources: ['mr'], target: 'ct', context: 0 };

export const MAX_CONTEXT = 3;

const isModality = (s: string): s is Modality => (MODALITIES as readonly string[]).includes(s);

const FORM = '<source>[+<source>...]-to-<target>[:2.5d=k][:mr=landmarks]';

/**
 * Parses `t1+t2-to-ct`, `pet-to-mr`, `t1-to-flair:2.5d=1`, `mr-to-ct:mr=landmarks` (sources joined
 * by `+`, `-to-`, the target, then optional settings: `:2.5d=k`, the 2.5D context, and `:mr=s`, the
 * MR scale, `percentile` or `landmarks`). The settings are read in either order; formatTask writes
 * them in the canonical one (2.5d first). Every problem is named.
 */
export function parseTask(text: string): TaskSpec {
  const [head, ...settings] = text.trim().toLowerCase().split(':');
  const m = /^([a-z0-9+]+)-to-([a-z0-9]+)$/.exec(head);
  if (!m)
    throw new ImagingError('INVALID_ARGUMENT', `task "${text}" is not of the form ${FORM}, e.g. t1+t2-to-ct`);
  const values: Record<string, string> = {};
  for (const setting of settings) {
    const kv = /^([a-z0-9.]+)=(.*)$/.exec(setting);
    if (!kv || !['2.5d', 'mr'].includes(kv[1]))
      throw new ImagingError(
        'INVALID_ARGUMENT',
        `task "${text}": unknown setting ":${setting}"; known: :2.5d=k (2.5D context), :mr=percentile|landmarks (MR scale)`,
      );
    if (values[kv[1]] !== undefined)
      throw new ImagingError('INVALID_ARGUMENT', `task "${text}": :${kv[1]}= is given twice`);
    values[kv[1]] = kv[2];
  }
  const c = values['2.5d'];
  if (c !== undefined && !/^\d+$/.test(c))
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `task "${text}": 2.5D context must be an integer in [0, ${MAX_CONTEXT}], got "${c}"`,
    );
  return validateTask({
    sources: m[1].split('+'),
    target: m[2],
    context: c === undefined ? 0 : Number(c),
    mrScale: values.mr,
  });
}

/** Checks a task from any source (a message, a config file); returns it or throws naming the problem. */
export function validateTask(t: {
  sources: unknown;
  target: unknown;
  context?: unknown;
  mrScale?: unknown;
}): TaskSpec {
  const known = MODALITIES.join(', ');
  if (!Array.isArray(t.sources) || t.sources.length === 0 || t.sources.length > MODALITIES.length)
    throw new ImagingError('INVALID_ARGUMENT', 'a task needs one or more source modalities');
  for (const s of t.sources)
    if (typeof s !== 'string' || !isModality(s))
      throw new ImagingError('INVALID_ARGUMENT', `unknown source modality "${s}"; known: ${known}`);
  if (typeof t.target !== 'string' || !isModality(t.target))
    throw new ImagingError('INVALID_ARGUMENT', `unknown target modality "${t.target}"; known: ${known}`);
  const sources = t.sources as Modality[];
  if (new Set(sources).size !== sources.length)
    throw new ImagingError('INVALID_ARGUMENT', `a source modality is listed twice: ${sources.join('+')}`);
  if (sources.includes(t.target))
    throw new ImagingError('INVALID_ARGUMENT', `the target ${t.target} is also a source`);
  const context = t.context ?? 0;
  if (!Number.isInteger(context) || (context as number) < 0 || (context as number) > MAX_CONTEXT)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `2.5D context must be an integer in [0, ${MAX_CONTEXT}], got ${context}`,
    );
  const mrScale = t.mrScale ?? 'percentile';
  if (typeof mrScale !== 'string' || !(MR_SCALES as readonly string[]).includes(mrScale))
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `unknown MR scale "${mrScale}"; known: ${MR_SCALES.join(', ')}`,
    );
  const task: TaskSpec = { sources: [...sources], target: t.target, context: context as number };
  // The default is left out, so that a task has one form (and one text) whichever way it was written.
  if (mrScale === 'percentile') return task;
  if (![...sources, t.target].some((m) => kindOf(m) === 'mr'))
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `MR scale ${mrScale}: the task ${formatTask(task)} has no MR modality to scale`,
    );
  return { ...task, mrScale: mrScale as MrScale };
}

/** The canonical text of a task (what parseTask reads back): settings only where not the default. */
export function formatTask(t: TaskSpec): string {
  const context = t.context > 0 ? `:2.5d=${t.context}` : '';
  const mr = t.mrScale && t.mrScale !== 'percentile' ? `:mr=${t.mrScale}` : '';
  return `${t.sources.join('+')}-to-${t.target}${context}${mr}`;
}

/** Condition channels the model sees: each source's slice and its 2k neighbours. */
export function conditionChannels(t: TaskSpec): number {
  return t.sources.length * (2 * t.context + 1);
}

/** Every modality a site needs for the task: the sources and the target. */
export function taskModalities(t: TaskSpec): Modality[] {
  return [...t.sources, t.target];
}
