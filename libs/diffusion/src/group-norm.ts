import { tf } from './tf';

/**
 * GroupNorm over NHWC (statistics per sample and group of channels, as PyTorch's GroupNorm), with
 * its affine scale and shift, and optionally SiLU after it: one operation with a hand-derived
 * gradient. Autodiff of the composition runs about three times as many kernels (moments, the
 * broadcasts and their reductions), which on wasm cost more than the arithmetic.
 *
 * Only x, gamma and beta are kept for the backward pass; the statistics are recomputed there.
 * With xhat = (x - mean) * rstd and y = xhat * gamma + beta (out = y, or y * sigmoid(y)):
 *   dy     = dout                                   (or dout * s * (1 + y * (1 - s)), s = sigmoid(y))
 *   dgamma = sum(dy * xhat), dbeta = sum(dy)         over batch and pixels
 *   dx     = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, means over each group
 */
export function groupNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  eps: number,
  withSilu: boolean,
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (c % groups !== 0)
    throw new RangeError(`groupNorm: ${c} channels are not divisible into ${groups} groups`);
  const cg = c / groups;
  const count = h * w * cg;
  // Means over each group (pixels and the group's channels), broadcast back per channel as
  // [b, 1, 1, c]. The pixel sums are a matrix product with ones: wasm reduces over a middle axis
  // by transposing the whole tensor first, which cost more than the rest of the norm.
  const groupMean = (t: tf.Tensor): tf.Tensor => {
    const perChannel = tf.matMul(tf.ones([1, 1, h * w]), t.reshape([b, h * w, c])); // [b, 1, c]
    const perGroup = perChannel.reshape([b, groups, cg]).sum(2, true).div(count); // [b, g, 1]
    return perGroup.mul(tf.ones([1, 1, cg])).reshape([b, 1, 1, c]);
  };
  // Sums over batch and pixels per channel, as a matrix product for the same reason.
  const channelSum = (t: tf.Tensor): tf.Tensor =>
    tf.matMul(tf.ones([1, b * h * w]), t.reshape([b * h * w, c]));
  const normalize = (x4: tf.Tensor) => {
    const xc = x4.sub(groupMean(x4));
    const rstd = groupMean(xc.square()).add(eps).rsqrt();
    return { xhat: xc.mul(rstd), rstd };
  };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x4, g, be, save] = args as [tf.Tensor4D, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x4, g, be]);
    const value = tf.tidy(() => {
      const y = normalize(x4).xhat.mul(g).add(be);
      return (withSilu ? y.mul(tf.sigmoid(y)) : y) as tf.Tensor4D;
    });
    return {
      value,
      gradFunc: (dout: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [xs, gs, bs] = saved;
          const { xhat, rstd } = normalize(xs);
          let dy = dout;
          if (withSilu) {
            const y = xhat.mul(gs).add(bs);
            const s = tf.sigmoid(y);
            dy = dout.mul(s.mul(y.mul(tf.scalar(1).sub(s)).add(1)));
          }
          const dgamma = channelSum(dy.mul(xhat)).reshape(gs.shape);
          const dbeta = channelSum(dy).reshape(bs.shape);
          const gg = dy.mul(gs);
          const dx = gg
            .sub(groupMean(gg))
            .sub(xhat.mul(groupMean(gg.mul(xhat))))
            .mul(rstd);
          return [dx, dgamma, dbeta];
        }),
    };
  });
  return op(x, gamma, beta) as unknown as tf.Tensor4D;
}
