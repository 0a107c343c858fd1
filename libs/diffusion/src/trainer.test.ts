import { beforeAll, describe, expect, it } from 'vitest';
import { TINY } from './testing';
import { tf } from './tf';
import { type Batch, Trainer } from './trainer';
import { UNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function batch(count: number, size: number): Batch {
  const n = count * size * size;
  const source = new Float32Array(n);
  const target = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = i % size;
    const y = Math.floor(i / size) % size;
    const inside = Math.hypot(x - size / 2, y - size / 2) < size / 3;
    source[i] = inside ? 0.4 + 0.2 * Math.sin(x) : -1;
    target[i] = inside ? -0.5 + 0.3 * Math.cos(y) : -1;
    mask[i] = inside ? 1 : 0;
  }
  return { count, size, source, target, mask };
}

describe('Trainer', () => {
  it('lowers the loss over a few steps and leaves the tensor count unchanged after every step', async () => {
    const model = new UNet(TINY, 1);
    const trainer = new Trainer(model, {
      prediction: 'sample',
      optimizer: { kind: 'adam', lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: 1 },
      emaDecay: 0.9,
      seed: 4,
    });
    const b = batch(4, 16);
    const counts: number[] = [];
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      losses.push((await trainer.step(b)).mse);
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    const first = (losses[0] + losses[1] + losses[2]) / 3;
    const last = (losses[27] + losses[28] + losses[29]) / 3;
    expect(last).toBeLessThan(first * 0.5);
    trainer.dispose();
    model.dispose();
  });

  it('keeps weights nearer the FedProx anchor as mu grows', async () => {
    const drift = async (mu: number) => {
      const model = new UNet(TINY, 2);
      const trainer = new Trainer(model, {
        prediction: 'epsilon',
        fedProxMu: mu,
        emaDecay: 0,
        seed: 1,
        optimizer: {
          kind: 'adam',
          lr: 5e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          clipNorm: 0,
        },
      });
      const anchor = new Map([...model.params].map(([n, p]) => [n, p.dataSync().slice()]));
      trainer.setProxAnchor();
      for (let i = 0; i < 8; i++) await trainer.step(batch(2, 16));
      let d = 0;
      for (const [n, p] of model.params) {
        const a = anchor.get(n)!;
        const v = p.dataSync();
        for (let i = 0; i < v.length; i++) d += (v[i] - a[i]) ** 2;
      }
      trainer.dispose();
      model.dispose();
      return Math.sqrt(d);
    };
    expect(await drift(50)).toBeLessThan((await drift(0)) * 0.8);
  });

  it('leaves no tensor behind over a model and trainer life: EMA, a step, a saved and restored state', async () => {
    // Variables share their initial tensors' data: an undisposed initial tensor kept a copy of every
    // weight alive for each model, EMA and restored optimizer state.
    const before = tf.memory().numTensors;
    const model = new UNet(TINY, 1);
    const trainer = new Trainer(model, { emaDecay: 0.9 });
    await trainer.step(batch(1, 16));
    trainer.importState(await trainer.exportState());
    trainer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a batch whose arrays do not match its shape', async () => {
    const model = new UNet(TINY, 1);
    const trainer = new Trainer(model);
    await expect(
      trainer.step({ count: 2, size: 16, source: new Float32Array(10), target: new Float32Array(512) }),
    ).rejects.toThrow(/needs 512 values/);
    trainer.dispose();
    model.dispose();
  });
});
