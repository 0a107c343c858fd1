import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from './checkpoint';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { DEFAULT_UNET_CONFIG, UNet, upsampleNearest2x } from './unet';
import { unetConfigFor, unetLayout } from './unet-config';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function input(b: number, size: number, seed: number) {
  return {
    x: tf.randomNormal([b, size, size, 2], 0, 1, 'float32', seed) as tf.Tensor4D,
    t: tf.tensor1d([3, 700].slice(0, b), 'int32'),
  };
}

describe('UNet', () => {
  it('has MONAI state-dict names and PyTorch layouts, about 2M parameters by default', () => {
    const m = new UNet(DEFAULT_UNET_CONFIG);
    const layout = new Map(m.layout().map((l) => [l.name, l.shape]));
    expect(m.paramCount()).toBeGreaterThan(1.8e6);
    expect(m.paramCount()).toBeLessThan(2.3e6);
    expect(layout.get('conv_in.conv.weight')).toEqual([32, 2, 3, 3]);
    expect(layout.get('time_embed.0.weight')).toEqual([128, 32]);
    expect(layout.get('down_blocks.0.downsampler.op.conv.weight')).toEqual([32, 32, 3, 3]);
    expect(layout.get('down_blocks.1.resnets.0.skip_connection.conv.weight')).toEqual([64, 32, 1, 1]);
    expect(layout.get('middle_block.attention.attn.to_q.weight')).toEqual([80, 80]);
    expect(layout.get('up_blocks.0.resnets.0.conv1.conv.weight')).toEqual([80, 160, 3, 3]);
    expect(layout.get('up_blocks.1.upsampler.postconv.conv.weight')).toEqual([64, 64, 3, 3]);
    expect(layout.get('out.2.conv.weight')).toEqual([1, 32, 3, 3]);
    expect([...layout.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0)).toBe(m.paramCount());
    m.dispose();
  });

  it('unetLayout, which needs no tfjs, names every tensor a built model exports, with its shape', async () => {
    for (const config of [DEFAULT_UNET_CONFIG, TINY, unetConfigFor([8, 16], 1)]) {
      const m = new UNet(config, 3);
      const exported = (await m.toNamedArrays()).map((a) => ({ name: a.name, shape: a.shape }));
      exported.sort((a, b) => (a.name < b.name ? -1 : 1));
      expect(unetLayout(config)).toEqual(exported);
      m.dispose();
    }
  });

  it('starts as the zero function (zero-initialized last convolutions) and leaks no tensors', () => {
    const m = new UNet(TINY, 1);
    const { x, t } = input(2, 16, 1);
    const before = tf.memory().numTensors;
    const y = m.apply(x, t);
    expect(y.shape).toEqual([2, 16, 16, 1]);
    expect(Math.max(...(y.dataSync() as Float32Array).map(Math.abs))).toBe(0);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, t]);
    m.dispose();
  });

  it('computes the same forward pass on wasm and on the cpu backend', async () => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const m = new UNet(TINY, 2);
      randomizeWeights(m, 5);
      const { x, t } = input(2, 16, 3);
      const y = m.apply(x, t);
      const out = y.dataSync().slice();
      tf.dispose([x, t, y]);
      m.dispose();
      return out;
    };
    const a = await run('cpu');
    const b = await run('wasm');
    let max = 0;
    for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
    expect(max).toBeLessThan(1e-4);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('saves and loads to the same outputs, and refuses weights of another shape', async () => {
    const m = new UNet(TINY, 3);
    randomizeWeights(m, 9);
    const { x, t } = input(2, 16, 4);
    const y1 = m.apply(x, t);
    const bytes = await encodeModel(m, { round: '7' });
    const { model: back, metadata } = decodeModel(bytes, 'tiny.safetensors');
    expect(metadata.round).toBe('7');
    const y2 = back.apply(x, t);
    expect(Array.from(y2.dataSync())).toEqual(Array.from(y1.dataSync()));
    const other = new UNet({ ...TINY, channels: [8, 24], normNumGroups: 4, numHeadChannels: 8 });
    const arrays = await back.toNamedArrays();
    expect(() => other.loadNamedArrays(arrays, 'tiny.safetensors')).toThrow(
      /tiny\.safetensors do not match the model: .*has shape/,
    );
    tf.dispose([x, t, y1, y2]);
    back.dispose();
    other.dispose();
    m.dispose();
    expect(() => new UNet({ ...TINY, channels: [8, 18] })).toThrow(/multiple of normNumGroups/);
    expect(() => m.apply(tf.zeros([1, 15, 15, 2]) as tf.Tensor4D, tf.tensor1d([1], 'int32'))).toThrow();
  });
});

afterAll(() => {
  expect(tf.getBackend()).toBeDefined();
});

describe('upsampleNearest2x', () => {
  it('repeats each value over a 2x2 block, and its gradient sums each block (hand-computed)', () => {
    // x[0, i, j, k] = 100 i + 10 j + k
    const x = tf.tensor4d(
      Array.from({ length: 2 * 3 * 2 }, (_, n) => {
        const k = n % 2;
        const j = Math.floor(n / 2) % 3;
        const i = Math.floor(n / 6);
        return 100 * i + 10 * j + k;
      }),
      [1, 2, 3, 2],
    );
    const y = upsampleNearest2x(x);
    expect(y.shape).toEqual([1, 4, 6, 2]);
    const yv = y.arraySync() as number[][][][];
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 6; j++)
        for (let k = 0; k < 2; k++)
          expect(yv[0][i][j][k]).toBe(100 * Math.floor(i / 2) + 10 * Math.floor(j / 2) + k);
    // d/dx sum(w * up(x)) with w[i, j, k] = i + j: each x gets the sum of w over its 2x2 block.
    const w = tf.tensor4d(
      Array.from({ length: 4 * 6 * 2 }, (_, n) => Math.floor(n / 12) + (Math.floor(n / 2) % 6)),
      [1, 4, 6, 2],
    );
    const g = tf.grad((a: tf.Tensor) =>
      upsampleNearest2x(a as tf.Tensor4D)
        .mul(w)
        .sum(),
    )(x);
    const gv = g.arraySync() as number[][][][];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) {
        // rows 2i, 2i+1 and columns 2j, 2j+1: sum of (r + c) = 4 (2i + 2j) + 4
        for (let k = 0; k < 2; k++) expect(gv[0][i][j][k]).toBe(8 * i + 8 * j + 4);
      }
    tf.dispose([x, y, w, g]);
  });
});
