import { encodeFigures, secureMetricsLayout } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { INITIAL_MODEL_ROUND, secureFigureRows } from './secure-figures';

/** The rows of a secure-metrics round, from slot means of one site's known figures (exact). */
const SLOTS = secureMetricsLayout('ct');
const means = encodeFigures(
  SLOTS,
  { train_loss: 0.5, mae: 201.2, psnr: 25, ssim: 0.5, nearest_synth: 0.3, nearest_real: 0.6 },
  0.05,
);
const base = {
  federationId: 'f',
  roundNumber: 7,
  modelRound: 6,
  slots: SLOTS,
  slotMeans: means,
  clip: 0.05,
  errorBound: 1e-6,
  sites: 4,
};

describe('secureFigureRows', () => {
  it('puts the loss under the round and the scores under the round that made the model, all global', () => {
    const rows = secureFigureRows({ ...base, withModelFigures: true });
    const at = (name: string) => rows.find((r) => r.name === name)!;
    expect(at('train_loss')).toMatchObject({ roundNumber: 7, siteId: null, count: 4 });
    expect(at('train_loss').value).toBeCloseTo(0.5, 4);
    expect(at('mae')).toMatchObject({ roundNumber: 6, siteId: null, count: 4 });
    expect(at('mae').value).toBeCloseTo(201.2, 1);
    // The bound of a plain figure: (e + c 2^-23) (hi - lo) / (2c).
    expect(at('train_loss_bound').value).toBeCloseTo(((1e-6 + 0.05 * 2 ** -23) * 10) / 0.1, 10);
    expect(at('memorization_ratio').value).toBeCloseTo(0.5, 3);
    expect(rows.some((r) => r.name === 'evaluated' || r.name === 'nearest_checked')).toBe(false);
    expect(INITIAL_MODEL_ROUND).toBe(-1);
  });

  it('leaves the scores out when the model has them already', () => {
    const rows = secureFigureRows({ ...base, withModelFigures: false });
    expect(rows.map((r) => r.name)).toEqual(['train_loss', 'train_loss_bound']);
  });
});
