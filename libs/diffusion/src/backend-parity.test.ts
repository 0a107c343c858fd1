import { afterAll, describe, expect, it } from 'vitest';
import { type BackendName, selectBackend } from './backend';
import { conv2d } from './conv';
import { ddimSample, modelDenoiser } from './sampler';
import { makeSchedule } from './schedule';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { Trainer } from './trainer';
import { UNet } from './unet';
import { isSoftwareAdapter } from './webgpu';

/**
 * Every backend that loads here against the cpu backend (the reference): a convolution's value and
 * gradients, the U-Net's forward pass, one training step's gradients and a DDIM sample, on the same
 * weights and inputs. wasm always runs; webgpu runs where Dawn finds an adapter (a software one such
 * as Mesa's lavapipe counts: it runs the same WGSL shaders); the libtensorflow backends where
 * installed.
 */

const CANDIDATES: BackendName[] = ['wasm', 'webgpu', 'tensorflow', 'tensorflow-gpu'];
const available = new Map<BackendName, string>();
const missing = new Map<BackendName, string>();
for (const name of CANDIDATES) {
  try {
    await selectBackend(name);
    available.set(name, tf.getBackend());
  } catch (err) {
    missing.set(name, (err as Error).message.split(';')[0]);
  }
}
await tf.setBackend('cpu');

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
};

const seq = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

/** Computes `fn` on a backend, with tfjs's backend name. */
async function on<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const out = await fn();
  expect(tf.memory().numTensors, `tensors left behind on ${backend}`).toBe(before);
  return out;
}

async function convCase(): Promise<{ y: Float32Array; gx: Float32Array; gw: Float32Array }[]> {
  const out = [];
  // 'auto': the backend's own gradient kernels where it has them, forward convolutions where not.
  for (const mode of ['auto'] as const) {
    const x = tf.tensor4d(
      seq(2 * 9 * 9 * 3, (i) => Math.sin(i * 1.3) * 2),
      [2, 9, 9, 3],
    );
    const w = tf.tensor4d(
      seq(3 * 3 * 3 * 4, (i) => Math.cos(i * 0.7)),
      [3, 3, 3, 4],
    );
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1, mode)));
    const [gx, gw] = tf.grads(f)([x, w]);
    const y = conv2d(x, w, 2, 1, mode);
    out.push({
      y: (await y.data()) as Float32Array,
      gx: (await gx.data()) as Float32Array,
      gw: (await gw.data()) as Float32Array,
    });
    tf.dispose([x, w, gx, gw, y]);
  }
  return out;
}

async function forwardCase(): Promise<Float32Array> {
  const m = new UNet(TINY, 2);
  randomizeWeights(m, 5);
  const x = tf.tensor4d(
    seq(2 * 16 * 16 * 2, (i) => Math.sin(i * 0.37)),
    [2, 16, 16, 2],
  );
  const t = tf.tensor1d([17, 640], 'int32');
  const y = m.apply(x, t);
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, t, y]);
  m.dispose();
  return out;
}

async function gradientCase(): Promise<Map<string, Float32Array>> {
  const m = new UNet(TINY, 3);
  randomizeWeights(m, 8);
  const trainer = new Trainer(m, { seed: 4, l1Weight: 0.5, emaDecay: 0, prediction: 'v' });
  const n = 3 * 16 * 16;
  const part = await trainer.shardGrads(
    {
      count: 3,
      size: 16,
      source: seq(n, (i) => Math.sin(i * 0.11)),
      target: seq(n, (i) => Math.cos(i * 0.05) * 0.9),
      mask: Uint8Array.from({ length: n }, (_, i) => (i % 6 === 0 ? 0 : 1)),
    },
    0,
    0,
    3,
    false,
  );
  const out = new Map<string, Float32Array>();
  for (const [name, g] of Object.entries(part.grads)) out.set(name, (await g.data()) as Float32Array);
  tf.dispose(Object.values(part.grads));
  trainer.dispose();
  m.dispose();
  return out;
}

/** One Adam step with clipping (the FedProx term included): loss, gradient norm, and the update. */
async function optimizerCase(): Promise<{ loss: number; gradNorm: number; update: Float32Array }> {
  const m = new UNet(TINY, 5);
  randomizeWeights(m, 9);
  const before = await m.toNamedArrays();
  const trainer = new Trainer(m, { seed: 2, emaDecay: 0, prediction: 'v', fedProxMu: 0.01 });
  trainer.setProxAnchor();
  const n = 2 * 16 * 16;
  const r = await trainer.step({
    count: 2,
    size: 16,
    source: seq(n, (i) => Math.sin(i * 0.21)),
    target: seq(n, (i) => Math.cos(i * 0.03)),
  });
  const after = await m.toNamedArrays();
  const update = new Float32Array(after.reduce((a, x) => a + x.data.length, 0));
  let o = 0;
  for (let k = 0; k < after.length; k++)
    for (let i = 0; i < after[k].data.length; i++) update[o++] = after[k].data[i] - before[k].data[i];
  trainer.dispose();
  m.dispose();
  return { loss: r.loss, gradNorm: r.gradNorm, update };
}

async function samplingCase(): Promise<Float32Array> {
  const m = new UNet(TINY, 4);
  randomizeWeights(m, 3, 0.1);
  const r = await ddimSample(
    modelDenoiser(m),
    seq(2 * 16 * 16, (i) => Math.cos(i * 0.2)),
    2,
    16,
    {
      schedule: makeSchedule('cosine'),
      prediction: 'v',
      steps: 4,
      eta: 0.5,
      seed: 11,
    },
  );
  m.dispose();
  return r.mean;
}

describe('backend parity against the cpu backend', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('knows which backends it checks', () => {
    expect(available.has('wasm')).toBe(true);
    for (const [name, why] of missing) console.info(`backend parity: ${name} not checked here: ${why}`);
  });

  for (const name of CANDIDATES) {
    describe.skipIf(!available.has(name))(name, () => {
      const tfName = () => available.get(name)!;

      it('convolution value and gradients, as this backend computes them (relative error <= 1e-4)', async () => {
        const ref = await on('cpu', convCase);
        const got = await on(tfName(), convCase);
        for (let k = 0; k < ref.length; k++) {
          expect(relErr(got[k].y, ref[k].y)).toBeLessThan(1e-5);
          expect(relErr(got[k].gx, ref[k].gx)).toBeLessThan(1e-4);
          expect(relErr(got[k].gw, ref[k].gw)).toBeLessThan(1e-4);
        }
      }, 120_000);

      it('U-Net forward pass (max abs difference <= 1e-4)', async () => {
        const ref = await on('cpu', forwardCase);
        const got = await on(tfName(), forwardCase);
        let max = 0;
        for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(ref[i] - got[i]));
        expect(max).toBeLessThan(1e-4);
        expect(Math.max(...ref.map(Math.abs))).toBeGreaterThan(1e-3);
      }, 120_000);

      it('one training step: every parameter gradient (relative error <= 1e-3)', async () => {
        const ref = await on('cpu', gradientCase);
        const got = await on(tfName(), gradientCase);
        expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
        // Relative to each gradient's norm, floored at 1e-4 of the whole gradient's: the attention
        // key biases have a gradient of exactly zero (softmax ignores a constant shift), which
        // both backends give as rounding noise near 1e-13.
        const norm = (a: ArrayLike<number>) =>
          Math.sqrt(Array.prototype.reduce.call(a, (s: number, v: number) => s + v * v, 0) as number);
        let global = 0;
        for (const g of ref.values()) global += norm(g) ** 2;
        global = Math.sqrt(global);
        let worst = 0;
        for (const [p, g] of ref) {
          const h = got.get(p)!;
          const diff = norm(Float32Array.from(g, (v, i) => v - h[i]));
          worst = Math.max(worst, diff / Math.max(norm(g), 1e-4 * global));
        }
        expect(worst).toBeLessThan(1e-3);
      }, 180_000);

      it('one Adam step: the loss, the global gradient norm (a sum over every parameter), the update', async () => {
        const ref = await on('cpu', optimizerCase);
        const got = await on(tfName(), optimizerCase);
        expect(Math.abs(got.loss - ref.loss) / ref.loss).toBeLessThan(1e-4);
        expect(Math.abs(got.gradNorm - ref.gradNorm) / ref.gradNorm).toBeLessThan(1e-4);
        // Adam's first step is lr * g / (|g| + eps): where g is at rounding level its sign can
        // differ between backends; all but 1 in 1,000 weights must move alike (within 1e-6).
        let off = 0;
        for (let i = 0; i < ref.update.length; i++) if (Math.abs(ref.update[i] - got.update[i]) > 1e-6) off++;
        expect(off).toBeLessThanOrEqual(Math.ceil(ref.update.length / 1000));
      }, 180_000);

      it('DDIM sample from the same seed (max abs difference <= 1e-3)', async () => {
        const ref = await on('cpu', samplingCase);
        const got = await on(tfName(), samplingCase);
        let max = 0;
        for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(ref[i] - got[i]));
        expect(max).toBeLessThan(1e-3);
      }, 180_000);
    });
  }
});

describe('isSoftwareAdapter', () => {
  it('tells CPU rasterizers from GPUs by what adapters report', () => {
    // As Dawn reports Mesa's lavapipe, SwiftShader and a discrete GPU.
    expect(
      isSoftwareAdapter({
        vendor: 'mesa',
        architecture: '',
        description: 'llvmpipe (LLVM 15.0.6, 256 bits)',
      }),
    ).toBe(true);
    expect(
      isSoftwareAdapter({ vendor: 'google', architecture: '', device: 'SwiftShader Device (Subzero)' }),
    ).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H200' })).toBe(
      false,
    );
    expect(
      isSoftwareAdapter({ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900 XTX' }),
    ).toBe(false);
    expect(
      isSoftwareAdapter({
        vendor: 'intel',
        description: 'Intel(R) Arc(TM) A770 Graphics',
        isFallbackAdapter: true,
      }),
    ).toBe(true);
  });
});
