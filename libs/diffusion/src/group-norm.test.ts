import { beforeAll, describe, expect, it } from 'vitest';
import { groupNorm } from './group-norm';
import { tf } from './tf';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The composition, differentiated by tfjs's autodiff: the reference. */
function reference(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  eps: number,
  silu: boolean,
) {
  const [b, h, w, c] = x.shape;
  const xg = x.reshape([b, h, w, groups, c / groups]);
  const { mean, variance } = tf.moments(xg, [1, 2, 4], true);
  const y = xg
    .sub(mean)
    .mul(tf.rsqrt(variance.add(eps)))
    .reshape([b, h, w, c])
    .mul(gamma)
    .add(beta);
  return silu ? y.mul(tf.sigmoid(y)) : y;
}

function maxRel(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < x.length; i++) scale = Math.max(scale, Math.abs(y[i]));
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst / scale;
}

describe('groupNorm', () => {
  it('matches autodiff of GroupNorm (+ SiLU) on the cpu backend: value and the gradients of x, gamma and beta', () => {
    for (const silu of [false, true]) {
      const [b, h, w, c, groups] = [2, 5, 3, 8, 4];
      const x = tf.randomNormal([b, h, w, c], 0.3, 2, 'float32', 1) as tf.Tensor4D;
      const gamma = tf.randomNormal([c], 1, 0.5, 'float32', 2);
      const beta = tf.randomNormal([c], 0, 0.5, 'float32', 3);
      const up = tf.randomNormal([b, h, w, c], 0, 1, 'float32', 4);
      const loss = (f: typeof reference) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        f(xx as tf.Tensor4D, gg, bb, groups, 1e-6, silu)
          .mul(up)
          .sum();
      const ours = tf.grads(loss(groupNorm))([x, gamma, beta]);
      const theirs = tf.grads(loss(reference))([x, gamma, beta]);
      expect(
        maxRel(groupNorm(x, gamma, beta, groups, 1e-6, silu), reference(x, gamma, beta, groups, 1e-6, silu)),
      ).toBeLessThan(1e-5);
      for (let i = 0; i < 3; i++)
        expect(maxRel(ours[i], theirs[i]), `silu ${silu}, input ${i}`).toBeLessThan(1e-4);
    }
  });
});
