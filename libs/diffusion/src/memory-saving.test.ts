import { beforeAll, describe, expect, it } from 'vitest';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { type Batch, Trainer } from './trainer';
import { UNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function batch(count: number, size: number): Batch {
  const n = count * size * size;
  return {
    count,
    size,
    source: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)),
    target: Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11)),
    mask: Uint8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : 1)),
  };
}

/** Gradients of one step as plain arrays, by parameter name. */
async function gradients(
  checkpointing: boolean,
  microBatch: number,
  b: Batch,
): Promise<Map<string, Float32Array>> {
  const model = new UNet(TINY, 5);
  randomizeWeights(model, 9);
  model.checkpointing = checkpointing;
  const trainer = new Trainer(model, { seed: 3, l1Weight: 0.5, emaDecay: 0, fedProxMu: 0.1 });
  trainer.setProxAnchor();
  const before = tf.memory().numTensors;
  const part = await trainer.shardGrads(b, 0, 0, b.count, true, microBatch);
  const out = new Map(Object.entries(part.grads).map(([n, g]) => [n, g.dataSync() as Float32Array]));
  tf.dispose(Object.values(part.grads));
  // Nothing of the forward or backward pass (recomputed blocks included) is left behind.
  expect(tf.memory().numTensors).toBe(before);
  trainer.dispose();
  model.dispose();
  return out;
}

describe('activation checkpointing and micro-batches', () => {
  it('give the gradients of the plain full batch within 1e-5, for every parameter (attention included)', async () => {
    const b = batch(5, 16);
    const plain = await gradients(false, 5, b);
    expect(plain.size).toBe(new UNet(TINY).specs.length);
    for (const [checkpointing, micro] of [
      [true, 5],
      [false, 2],
      [true, 1],
      [true, 3],
    ] as const) {
      const other = await gradients(checkpointing, micro, b);
      let worst = 0;
      let largest = 0;
      for (const [name, g] of plain) {
        const h = other.get(name);
        expect(h, `${name} has a gradient`).toBeDefined();
        for (let i = 0; i < g.length; i++) {
          worst = Math.max(worst, Math.abs(g[i] - h![i]));
          largest = Math.max(largest, Math.abs(g[i]));
        }
      }
      expect(largest).toBeGreaterThan(1e-3);
      expect(worst, `checkpointing ${checkpointing}, micro-batch ${micro}`).toBeLessThan(1e-5);
    }
  }, 60_000);
});
