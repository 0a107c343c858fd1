import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conv2d, hasNativeConvGradients } from './conv';
import { tf } from './tf';

function relErr(
  a: Float32Array | Int32Array | Uint8Array,
  b: Float32Array | Int32Array | Uint8Array,
): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

// Reference: the cpu backend's own conv2d gradients (Conv2DBackpropInput / Filter).
async function reference(
  xv: Float32Array,
  wv: Float32Array,
  xs: number[],
  ws: number[],
  stride: number,
  pad: number,
) {
  await tf.setBackend('cpu');
  const x = tf.tensor4d(xv, xs as [number, number, number, number]);
  const w = tf.tensor4d(wv, ws as [number, number, number, number]);
  const padding: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [pad, pad],
    [pad, pad],
    [0, 0],
  ];
  const f = (a: tf.Tensor, b: tf.Tensor) =>
    tf
      .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, padding)
      .square()
      .sum();
  const [gx, gw] = tf.grads(f)([x, w]);
  const y = tf.conv2d(x, w, stride, padding);
  const out = { y: await y.data(), gx: await gx.data(), gw: await gw.data() };
  tf.dispose([x, w, gx, gw, y]);
  return out;
}

async function ours(
  backend: string,
  xv: Float32Array,
  wv: Float32Array,
  xs: number[],
  ws: number[],
  stride: number,
  pad: number,
) {
  await tf.setBackend(backend);
  const x = tf.tensor4d(xv, xs as [number, number, number, number]);
  const w = tf.tensor4d(wv, ws as [number, number, number, number]);
  const f = (a: tf.Tensor, b: tf.Tensor) =>
    conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad, 'forward-only')
      .square()
      .sum();
  const before = tf.memory().numTensors;
  const [gx, gw] = tf.grads(f)([x, w]);
  const y = conv2d(x, w, stride, pad, 'forward-only');
  const out = { y: await y.data(), gx: await gx.data(), gw: await gw.data() };
  tf.dispose([gx, gw, y]);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x, w]);
  return out;
}

const CASES = [
  { xs: [2, 9, 9, 3], ws: [3, 3, 3, 4], stride: 1, pad: 1 },
  { xs: [2, 8, 8, 4], ws: [3, 3, 4, 5], stride: 2, pad: 1 },
  { xs: [1, 9, 7, 2], ws: [3, 3, 2, 3], stride: 2, pad: 1 },
  { xs: [3, 6, 6, 4], ws: [1, 1, 4, 2], stride: 1, pad: 0 },
];

describe('conv2d with forward-only gradients', () => {
  let saved: string;
  beforeAll(async () => {
    await tf.ready();
    saved = tf.getBackend();
  });
  afterAll(async () => {
    await tf.setBackend(saved);
  });

  for (const backend of ['cpu', 'wasm']) {
    it(`matches the cpu backend's own gradients on ${backend} (relative error <= 1e-4)`, async () => {
      let seed = 1;
      for (const c of CASES) {
        const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
        const xv = Float32Array.from({ length: n(c.xs) }, () => Math.sin(seed++ * 12.9898) * 2);
        const wv = Float32Array.from({ length: n(c.ws) }, () => Math.cos(seed++ * 78.233));
        const ref = await reference(xv, wv, c.xs, c.ws, c.stride, c.pad);
        const got = await ours(backend, xv, wv, c.xs, c.ws, c.stride, c.pad);
        expect(relErr(got.y as Float32Array, ref.y as Float32Array)).toBeLessThan(1e-5);
        expect(relErr(got.gx as Float32Array, ref.gx as Float32Array)).toBeLessThan(1e-4);
        expect(relErr(got.gw as Float32Array, ref.gw as Float32Array)).toBeLessThan(1e-4);
      }
    });
  }

  it('uses the backend gradient kernels where it has them (cpu) and forward convolutions where not (wasm)', async () => {
    const kernelsOfGradient = async () => {
      const x = tf.ones([1, 6, 6, 2]) as tf.Tensor4D;
      const w = tf.ones([3, 3, 2, 2]) as tf.Tensor4D;
      const prof = await tf.profile(() => {
        tf.dispose(
          tf.grads((a: tf.Tensor, b: tf.Tensor) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D).sum())([x, w]),
        );
      });
      tf.dispose([x, w]);
      return new Set(prof.kernels.map((k) => k.name));
    };
    await tf.setBackend('cpu');
    expect(hasNativeConvGradients()).toBe(true);
    expect(await kernelsOfGradient()).toContain('Conv2DBackpropFilter');
    await tf.setBackend('wasm');
    expect(hasNativeConvGradients()).toBe(false);
    const wasm = await kernelsOfGradient();
    expect(wasm).not.toContain('Conv2DBackpropFilter');
    expect(wasm).toContain('Conv2D');
  });
});
