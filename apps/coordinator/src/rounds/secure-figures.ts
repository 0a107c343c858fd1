import { decodeFigures, isPresenceFlag, type MetricSlot } from '@fedsynth/protocol';
import type { MetricEntity } from '../db/entities';

type MetricRow = Omit<MetricEntity, 'id'>;

/** The round number the figures of the federation's initial model (no round produced it) are stored under. */
export const INITIAL_MODEL_ROUND = -1;

/** Figures that describe a model (the round's starting one), not the round's training. */
const MODEL_FIGURES = new Set(['mae', 'psnr', 'ssim', 'nearest_synth', 'nearest_real']);

/**
 * The metric rows of a round whose figures came inside the masked vectors (privacy.secureMetrics):
 * the coordinator has only the unmasked weighted means, so every row is global (site null), with
 * `count` the sites in the sum. The training loss belongs to this round; the scores describe the
 * round's starting model and go under `modelRound`, the round that produced it
 * (INITIAL_MODEL_ROUND for the initial model), unless that round has scores already
 * (`withModelFigures` false). Each figure comes with a `<name>_bound` row: how far it can lie from
 * the exact weighted mean of the sites' figures (see libs/protocol secure-metrics.ts).
 */
export function secureFigureRows(input: {
  federationId: string;
  roundNumber: number;
  modelRound: number;
  slots: readonly MetricSlot[];
  /** The unmasked weighted means of the slots, in layout order. */
  slotMeans: ArrayLike<number>;
  clip: number;
  errorBound: number;
  sites: number;
  withModelFigures: boolean;
}): MetricRow[] {
  const { federationId, sites } = input;
  const figures = decodeFigures(input.slots, input.slotMeans, input.clip, input.errorBound);
  const rows: MetricRow[] = [];
  const row = (roundNumber: number, name: string, value: number) =>
    rows.push({ federationId, roundNumber, siteId: null, name, value, count: sites });
  for (const [name, f] of figures) {
    if (isPresenceFlag(name)) continue;
    const model = MODEL_FIGURES.has(name);
    if (model && !input.withModelFigures) continue;
    const round = model ? input.modelRound : input.roundNumber;
    row(round, name, f.value);
    row(round, `${name}_bound`, f.bound);
  }
  const synth = figures.get('nearest_synth');
  const real = figures.get('nearest_real');
  if (input.withModelFigures && synth && real && real.value > 0)
    row(input.modelRound, 'memorization_ratio', synth.value / real.value);
  return rows;
}
