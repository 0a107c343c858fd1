import type { NoiseSchedule } from './schedule';
import { tf } from './tf';

/** What the network predicts: the noise (epsilon), the velocity v, or the clean sample x0. */
export type PredictionType = 'epsilon' | 'v' | 'sample';

/** Per-sample sqrt(alphā_t) and sqrt(1 - alphā_t) as [batch, 1, 1, 1] tensors. */
export function alphaTerms(
  schedule: NoiseSchedule,
  t: ArrayLike<number>,
): { sa: tf.Tensor4D; sb: tf.Tensor4D } {
  const a = Float32Array.from(t, (ti) => Math.sqrt(schedule.alphasCumprod[ti]));
  const b = Float32Array.from(t, (ti) => Math.sqrt(1 - schedule.alphasCumprod[ti]));
  return { sa: tf.tensor4d(a, [t.length, 1, 1, 1]), sb: tf.tensor4d(b, [t.length, 1, 1, 1]) };
}

/** The regression target for the prediction type. */
export function predictionTarget(
  type: PredictionType,
  x0: tf.Tensor4D,
  noise: tf.Tensor4D,
  sa: tf.Tensor4D,
  sb: tf.Tensor4D,
): tf.Tensor4D {
  if (type === 'epsilon') return noise;
  if (type === 'sample') return x0;
  return sa.mul(noise).sub(sb.mul(x0)) as tf.Tensor4D;
}

/** The x0 and epsilon implied by a prediction at noisy input xt. */
export function toX0AndEps(
  type: PredictionType,
  pred: tf.Tensor4D,
  xt: tf.Tensor4D,
  sa: tf.Tensor4D,
  sb: tf.Tensor4D,
): { x0: tf.Tensor4D; eps: tf.Tensor4D } {
  if (type === 'epsilon') return { x0: xt.sub(sb.mul(pred)).div(sa) as tf.Tensor4D, eps: pred };
  if (type === 'sample') return { x0: pred, eps: xt.sub(sa.mul(pred)).div(sb) as tf.Tensor4D };
  const x0 = sa.mul(xt).sub(sb.mul(pred)) as tf.Tensor4D;
  const eps = sb.mul(xt).add(sa.mul(pred)) as tf.Tensor4D;
  return { x0, eps };
}
