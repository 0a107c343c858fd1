import { beforeAll, describe, expect, it } from 'vitest';
import { DataParallelTrainer } from './parallel';
import { TINY } from './testing';
import { tf } from './tf';
import { Trainer } from './trainer';
import { UNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe('DataParallelTrainer', () => {
  it('makes the same update as one thread, with the batch split across two', async () => {
    const n = 4 * 16 * 16;
    const batch = {
      count: 4,
      size: 16,
      source: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7)),
      target: Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3)),
      mask: Uint8Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 0 : 1)),
    };
    const config = { seed: 7, l1Weight: 0.5, emaDecay: 0 };
    const single = new UNet(TINY, 3);
    const t1 = new Trainer(single, config);
    const multi = new UNet(TINY, 3);
    const t2 = await DataParallelTrainer.create(multi, config, { threads: 2, backend: 'wasm' });
    expect(t2.threads).toBe(2);
    for (let s = 0; s < 2; s++) {
      const a = await t1.step(batch);
      const b = await t2.step(batch);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
      expect(Math.abs(a.gradNorm - b.gradNorm) / a.gradNorm).toBeLessThan(1e-4);
    }
    let max = 0;
    for (const [name, p] of single.params) {
      const x = p.dataSync();
      const y = multi.params.get(name)!.dataSync();
      for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
    }
    expect(max).toBeLessThan(1e-5);
    await t2.dispose();
    t1.dispose();
    single.dispose();
    multi.dispose();
  }, 60_000);
});
