import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateSlices, evaluateSlicesParallel } from './evaluate';
import { ParallelSampler } from './parallel-sampler';
import { ddimSample, modelDenoiser } from './sampler';
import { makeSchedule } from './schedule';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { UNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe('ParallelSampler', () => {
  it('with two threads gives the images and spread of one thread with another batch size (stochastic DDIM, two samples)', async () => {
    const model = new UNet(TINY, 2);
    randomizeWeights(model, 4, 0.1);
    const count = 7;
    const size = 16;
    const source = Float32Array.from({ length: count * size * size }, (_, i) => Math.sin(i * 0.05));
    const common = { prediction: 'v' as const, steps: 4, eta: 0.5, samples: 2, seed: 9, batchSize: 2 };
    // Each slice draws its own noise: one thread in batches of 3 equals two threads in batches of 2.
    const one = await ddimSample(modelDenoiser(model), source, count, size, {
      ...common,
      batchSize: 3,
      schedule: makeSchedule('cosine'),
    });
    const sampler = await ParallelSampler.create(model, { threads: 2, backend: 'wasm' });
    expect(sampler.threads).toBe(2);
    const ticks: number[] = [];
    const two = await sampler.sample(source, count, size, {
      ...common,
      schedule: 'cosine',
      onStep: (d, t) => ticks.push(d / t),
    });
    await sampler.dispose();
    let worst = 0;
    for (let i = 0; i < one.mean.length; i++) {
      worst = Math.max(worst, Math.abs(one.mean[i] - two.mean[i]), Math.abs(one.std![i] - two.std![i]));
    }
    expect(worst).toBeLessThan(1e-6);
    // Every slice was synthesized (none left at zero), and the progress reached the end once.
    for (let z = 0; z < count; z++) expect(Math.abs(two.std![z * size * size + 40])).toBeGreaterThan(0);
    expect(ticks.at(-1)).toBe(1);
    expect(ticks).toHaveLength(2 * 4 * 4);
    model.dispose();
  }, 60_000);

  it('scores validation slices on two threads with the figures of one (evaluateSlicesParallel)', async () => {
    const model = new UNet(TINY, 3);
    randomizeWeights(model, 6, 0.1);
    const size = 16;
    const slices = Array.from({ length: 5 }, (_, k) => ({
      subjectId: 's',
      sliceIndex: k,
      size,
      source: Float32Array.from({ length: size * size }, (_, i) => Math.sin(i * 0.1 + k)),
      target: Float32Array.from({ length: size * size }, (_, i) => Math.cos(i * 0.07 - k) * 0.8),
      mask: Uint8Array.from({ length: size * size }, (_, i) => (i % 4 === 0 ? 0 : 1)),
    }));
    const opts = { prediction: 'v' as const, steps: 3, seed: 5, batchSize: 4 };
    const one = await evaluateSlices(model, slices, { ...opts, schedule: makeSchedule('cosine') });
    const two = await evaluateSlicesParallel(model, slices, { ...opts, schedule: 'cosine', threads: 2 });
    expect(one.slices).toBe(5);
    expect(two.slices).toBe(5);
    for (const k of ['mae', 'psnr', 'ssim'] as const)
      expect(Math.abs(one[k] - two[k]) / Math.abs(one[k]), k).toBeLessThan(1e-6);
    model.dispose();
  }, 60_000);
});
