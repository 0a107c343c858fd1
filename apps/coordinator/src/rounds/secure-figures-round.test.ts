import { encodeSafetensors } from '@fedsynth/diffusion/weights';
import type { SiteFigures } from '@fedsynth/protocol';
import type { Socket } from 'socket.io-client';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricEntity } from '../db/entities';
import { freshPostgres } from '../db/testing';
import { startAgent } from '../testing/protocol-agent';
import { type RoundFixture, startRoundFixture } from '../testing/round-fixture';

/**
 * Rounds of a federation with privacy.secureMetrics over socket.io, with protocol-level sites that
 * report known figures: the coordinator asks nobody to evaluate, keeps no per-site figure, and
 * stores each global figure (the weighted mean, checked here against the figures by hand) under
 * the round that produced the model it describes.
 */
const D = 500;
const SLOTS = 8;
const CLIP = 0.5;
const LEVELS = 65536;
const MAX_WEIGHT = 100;
const keys = [1, 2, 3].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(40 + i)));
const WEIGHTS = [60, 25, 15];

let f: RoundFixture;

beforeAll(async () => {
  f = await startRoundFixture({
    db: await freshPostgres(),
    federation: {
      name: 'secure-figures',
      secagg: { threatModel: 'honest-but-curious', clip: CLIP, levels: LEVELS, maxWeight: MAX_WEIGHT },
      plan: { minSites: 3, waitSeconds: 5 },
      privacy: { secureMetrics: true },
    },
    siteKeys: keys,
    initialModel: encodeSafetensors([
      { name: 'w', dtype: 'F32', shape: [D], data: Float32Array.from({ length: D }, (_, i) => Math.sin(i)) },
    ]),
  });
}, 60_000);

afterAll(async () => {
  await f?.close();
});

/** One round in which site k reports figures[k] with weight WEIGHTS[k]; what each site received. */
async function round(figures: SiteFigures[]) {
  const received: string[][] = [];
  const sockets: Socket[] = await Promise.all(
    keys.map((kp, k) =>
      startAgent(f.url, kp, new Float32Array(D).fill(0.01 * (k + 1)), WEIGHTS[k], {
        coordinatorKey: f.ctx.identity.publicKey,
        figures: figures[k],
      }),
    ),
  );
  sockets.forEach((s, k) => {
    received[k] = [];
    s.onAny((event: string) => received[k].push(event));
  });
  const rec = await f.engine.runRound(f.fedId);
  for (const s of sockets) s.disconnect();
  await new Promise((r) => setTimeout(r, 100));
  return { rec, received };
}

const weighted = (figures: SiteFigures[], name: keyof SiteFigures) =>
  figures.reduce((a, f, k) => a + WEIGHTS[k] * f[name]!, 0) / WEIGHTS.reduce((a, w) => a + w, 0);

/** 1.5 (hi - lo) |S| / ((Q - 1) B), B = 1 here; a group figure divided by its share (1) adds as much again. */
const resolution = (range: number, group: boolean) => {
  const e = (r: number) => (1.5 * r * 3) / ((LEVELS - 1) * (1 - 3 / (LEVELS - 1))) + r * 2 ** -23;
  return group ? (e(range) + range * e(1)) / (1 - e(1)) : e(range);
};

const FIRST: SiteFigures[] = [
  { train_loss: 0.42, mae: 310, psnr: 18.5, ssim: 0.41, nearest_synth: 0.3, nearest_real: 0.2 },
  { train_loss: 0.61, mae: 270, psnr: 19.5, ssim: 0.45, nearest_synth: 0.32, nearest_real: 0.22 },
  { train_loss: 0.35, mae: 400, psnr: 16, ssim: 0.3, nearest_synth: 0.28, nearest_real: 0.25 },
];
const SECOND: SiteFigures[] = [
  { train_loss: 0.2, mae: 150, psnr: 23, ssim: 0.62, nearest_synth: 0.22, nearest_real: 0.21 },
  { train_loss: 0.25, mae: 120, psnr: 24, ssim: 0.66 }, // no memorization check at this site
  { train_loss: 0.3, mae: 210, psnr: 21, ssim: 0.55, nearest_synth: 0.2, nearest_real: 0.26 },
];

describe('rounds of a federation with privacy.secureMetrics', () => {
  it('asks nobody to evaluate and stores only global figures: the initial model under round -1, the loss under the round', async () => {
    const { rec, received } = await round(FIRST);
    expect(rec.stage, rec.error ?? '').toBe('completed');
    // Each masked vector: the model, the figure slots, the weight element.
    expect(Number(rec.bytesIn)).toBe(3 * (D + SLOTS + 1) * 4);
    for (const r of received) {
      expect(r).toContain('round.start');
      expect(r).not.toContain('round.evaluate');
    }
    const rows = await f.ctx.db.dataSource.getRepository(MetricEntity).findBy({ federationId: f.fedId });
    expect(rows.filter((m) => m.siteId !== null)).toEqual([]);
    const at = (roundNumber: number, name: string) =>
      rows.find((m) => m.roundNumber === roundNumber && m.name === name);
    expect(Math.abs(at(0, 'train_loss')!.value - weighted(FIRST, 'train_loss'))).toBeLessThanOrEqual(
      resolution(10, false),
    );
    expect(at(0, 'mae')).toBeUndefined();
    expect(Math.abs(at(-1, 'mae')!.value - weighted(FIRST, 'mae'))).toBeLessThanOrEqual(
      resolution(4024, true),
    );
    expect(Math.abs(at(-1, 'psnr')!.value - weighted(FIRST, 'psnr'))).toBeLessThanOrEqual(
      resolution(100, true),
    );
    expect(Math.abs(at(-1, 'ssim')!.value - weighted(FIRST, 'ssim'))).toBeLessThanOrEqual(
      resolution(2, true),
    );
    expect(at(-1, 'mae_bound')!.value).toBeLessThanOrEqual(resolution(4024, true) * 1.01);
    expect(at(-1, 'mae')!.count).toBe(3);
    expect(at(-1, 'memorization_ratio')!.value).toBeCloseTo(
      weighted(FIRST, 'nearest_synth') / weighted(FIRST, 'nearest_real'),
      2,
    );
    expect(at(0, 'sites')!.value).toBe(3);
    // No per-site epsilon, no plain loss: the reports carried none.
    expect(rows.filter((m) => m.name === 'epsilon')).toEqual([]);
  }, 60_000);

  it('the next round fills in the figures of the model round 0 produced, over the sites that measured them', async () => {
    const { rec } = await round(SECOND);
    expect(rec.stage, rec.error ?? '').toBe('completed');
    expect(rec.number).toBe(1);
    const rows = await f.ctx.db.dataSource.getRepository(MetricEntity).findBy({ federationId: f.fedId });
    const at = (roundNumber: number, name: string) =>
      rows.filter((m) => m.roundNumber === roundNumber && m.name === name);
    expect(at(0, 'mae')).toHaveLength(1);
    expect(Math.abs(at(0, 'mae')[0].value - weighted(SECOND, 'mae'))).toBeLessThanOrEqual(
      resolution(4024, true),
    );
    expect(at(1, 'train_loss')).toHaveLength(1);
    expect(at(1, 'mae')).toEqual([]);
    // Site 2 ran no memorization check: the mean is over sites 1 and 3 (weights 60 and 15).
    const synth = (60 * 0.22 + 15 * 0.2) / 75;
    const share = 75 / 100;
    const e = (r: number) => (1.5 * r * 3) / ((LEVELS - 1) * (1 - 3 / (LEVELS - 1))) + r * 2 ** -23;
    expect(Math.abs(at(0, 'nearest_synth')[0].value - synth)).toBeLessThanOrEqual(
      (e(2) + 2 * e(1)) / (share - e(1)),
    );
    // The initial model's figures are not written twice.
    expect(at(-1, 'mae')).toHaveLength(1);
  }, 60_000);
});
