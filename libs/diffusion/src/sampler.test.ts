import { beforeAll, describe, expect, it } from 'vitest';
import { type PredictionType, toX0AndEps } from './objective';
import { type Denoiser, ddimSample, ddpmSample, modelDenoiser, samplingTimesteps } from './sampler';
import { makeSchedule } from './schedule';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { UNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

const schedule = makeSchedule('cosine', 1000);
const size = 8;
const count = 3;
// The data distribution is a single image x*: the ideal denoiser is known in closed form.
const xStar = Float32Array.from({ length: count * size * size }, (_, i) => Math.sin(i * 0.37) * 0.8);

function idealDenoiser(prediction: PredictionType): Denoiser {
  return (input, t) =>
    tf.tidy(() => {
      const n = input.shape[0];
      const xt = input.slice([0, 0, 0, 0], [n, size, size, 1]) as tf.Tensor4D;
      const tv = t.dataSync();
      const sa = tf.tensor4d(
        Float32Array.from(tv, (k) => Math.sqrt(schedule.alphasCumprod[k])),
        [n, 1, 1, 1],
      );
      const sb = tf.tensor4d(
        Float32Array.from(tv, (k) => Math.sqrt(1 - schedule.alphasCumprod[k])),
        [n, 1, 1, 1],
      );
      const x0 = tf.tensor4d(xStar.subarray(0, n * size * size), [n, size, size, 1]);
      const eps = xt.sub(sa.mul(x0)).div(sb) as tf.Tensor4D;
      if (prediction === 'epsilon') return eps;
      if (prediction === 'sample') return x0;
      return sa.mul(eps).sub(sb.mul(x0)) as tf.Tensor4D;
    });
}

describe('samplers against the closed-form ideal denoiser', () => {
  for (const prediction of ['epsilon', 'v', 'sample'] as PredictionType[]) {
    it(`DDIM (eta 0) and DDPM recover the data point with ${prediction} prediction`, async () => {
      const source = new Float32Array(count * size * size);
      const ddim = await ddimSample(idealDenoiser(prediction), source, count, size, {
        schedule,
        prediction,
        steps: 20,
        seed: 3,
        batchSize: 8,
      });
      const ddpm = await ddpmSample(idealDenoiser(prediction), source, count, size, {
        schedule,
        prediction,
        steps: 50,
        seed: 3,
        batchSize: 8,
      });
      for (let i = 0; i < xStar.length; i++) {
        expect(Math.abs(ddim.mean[i] - xStar[i])).toBeLessThan(1e-3);
        expect(Math.abs(ddpm.mean[i] - xStar[i])).toBeLessThan(1e-3);
      }
    });
  }

  it('converts between prediction types consistently', () => {
    tf.tidy(() => {
      const x0 = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
      const eps = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
      const sa = tf.tensor4d([0.6, 0.9], [2, 1, 1, 1]);
      const sb = tf.sqrt(tf.scalar(1).sub(sa.square())) as tf.Tensor4D;
      const xt = sa.mul(x0).add(sb.mul(eps)) as tf.Tensor4D;
      const v = sa.mul(eps).sub(sb.mul(x0)) as tf.Tensor4D;
      const back = toX0AndEps('v', v, xt, sa, sb);
      expect(back.x0.sub(x0).abs().max().dataSync()[0]).toBeLessThan(1e-5);
      expect(back.eps.sub(eps).abs().max().dataSync()[0]).toBeLessThan(1e-5);
    });
  });

  it('spaces timesteps like MONAI and rejects impossible step counts', () => {
    expect(samplingTimesteps(1000, 4)).toEqual([750, 500, 250, 0]);
    expect(() => samplingTimesteps(1000, 0)).toThrow(/steps must be/);
  });
});

describe('samplers with the real model', () => {
  it('are reproducible from the seed, return an uncertainty map for k samples, and leak no tensors', async () => {
    const model = new UNet(TINY, 7);
    randomizeWeights(model, 2, 0.1);
    const source = Float32Array.from({ length: 2 * 16 * 16 }, (_, i) => Math.cos(i));
    const before = tf.memory().numTensors;
    const a = await ddimSample(modelDenoiser(model), source, 2, 16, {
      schedule,
      prediction: 'v',
      steps: 4,
      seed: 9,
      samples: 3,
      eta: 0.5,
    });
    expect(tf.memory().numTensors).toBe(before);
    const b = await ddimSample(modelDenoiser(model), source, 2, 16, {
      schedule,
      prediction: 'v',
      steps: 4,
      seed: 9,
      samples: 3,
      eta: 0.5,
    });
    expect(Array.from(a.mean)).toEqual(Array.from(b.mean));
    expect(a.std).toBeDefined();
    expect(Math.max(...a.std!)).toBeGreaterThan(0);
    const c = await ddimSample(modelDenoiser(model), source, 2, 16, {
      schedule,
      prediction: 'v',
      steps: 4,
      seed: 10,
    });
    expect(Array.from(c.mean)).not.toEqual(Array.from(a.mean));
    expect(c.std).toBeUndefined();
    await ddpmSample(modelDenoiser(model), source, 2, 16, { schedule, prediction: 'v', steps: 3, seed: 1 });
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
