import { ImagingError } from './errors';

/**
 * Image-to-image tasks: which modalities condition the model, which one it synthesizes, and how
 * each is brought to the model's [-1, 1] scale.
 *
 * - `ct`: HU window [-1024, 3000] mapped linearly; body mask where CT > -500 HU.
 * - MR (`mr`, `t1`, `t2`, `flair`): robust per-volume percentiles inside the body (0.5 %, 99.5 %).
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
}

/** The task the platform started with: MRI (SynthRAD2023's `mr`) to CT, 2D. */
export const DEFAULT_TASK: TaskSpec = { sources: ['mr'], target: 'ct', context: 0 };

export const MAX_CONTEXT = 3;

const isModality = (s: string): s is Modality => (MODALITIES as readonly string[]).includes(s);

/**
 * Parses `t1+t2-to-ct`, `pet-to-mr`, `t1-to-flair:2.5d=1` (sources joined by `+`, `-to-`, the
 * target, then an optional `:2.5d=k`). Every problem is named.
 */
export function parseTask(text: string): TaskSpec {
  const m = /^([a-z0-9+]+)-to-([a-z0-9]+)(?::2\.5d=(\d+))?$/.exec(text.trim().toLowerCase());
  if (!m)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `task "${text}" is not of the form <source>[+<source>...]-to-<target>[:2.5d=k], e.g. t1+t2-to-ct`,
    );
  const sources = m[1].split('+');
  const context = m[3] === undefined ? 0 : Number(m[3]);
  return validateTask({ sources: sources as Modality[], target: m[2] as Modality, context });
}

/** Checks a task from any source (a message, a config file); returns it or throws naming the problem. */
export function validateTask(t: { sources: unknown; target: unknown; context?: unknown }): TaskSpec {
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
  return { sources: [...sources], target: t.target, context: context as number };
}

/** The canonical text of a task (what parseTask reads back). */
export function formatTask(t: TaskSpec): string {
  return `${t.sources.join('+')}-to-${t.target}${t.context > 0 ? `:2.5d=${t.context}` : ''}`;
}

/** Condition channels the model sees: each source's slice and its 2k neighbours. */
export function conditionChannels(t: TaskSpec): number {
  return t.sources.length * (2 * t.context + 1);
}

/** Every modality a site needs for the task: the sources and the target. */
export function taskModalities(t: TaskSpec): Modality[] {
  return [...t.sources, t.target];
}
