import { tf } from './tf';

/** How conv2d computes its gradients: the backend's own kernels, or forward convolutions. */
export type ConvGradients = 'auto' | 'native' | 'forward-only';

const hasNative = new Map<string, boolean>();

/**
 * Whether the current backend has its own convolution gradient kernels (tfjs-node's libtensorflow
 * with cuDNN on a GPU, webgpu, cpu); wasm has no Conv2DBackpropFilter.
 */
export function hasNativeConvGradients(): boolean {
  const backend = tf.getBackend();
  let has = hasNative.get(backend);
  if (has === undefined) {
    has =
      tf.getKernel('Conv2DBackpropFilter', backend) !== undefined &&
      tf.getKernel('Conv2DBackpropInput', backend) !== undefined;
    hasNative.set(backend, has);
  }
  return has;
}

/**
 * 2D convolution (NHWC input, [k, k, in, out] filter) with symmetric zero padding `pad` and
 * stride, as PyTorch computes it (TensorFlow's 'same' pads stride-2 convolutions asymmetrically,
 * which would not match MONAI's weights).
 *
 * Its gradient comes from the backend's own kernels where it has them (`auto`), else from forward
 * convolutions only, which work on every backend (wasm has no Conv2DBackpropFilter, and its
 * Conv2DBackpropInput is slow):
 * - dx: dy with zeros inserted between elements (stride > 1), convolved with the filter flipped in
 *   both spatial axes and its channels swapped;
 * - dw: the padded input with batch and channels exchanged, convolved with dy (zero-inserted) used
 *   as the filter, cropped to k x k.
 */
export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride = 1,
  pad = 1,
  gradients: ConvGradients = 'auto',
): tf.Tensor4D {
  const padding: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [pad, pad],
    [pad, pad],
    [0, 0],
  ];
  if (gradients === 'native' || (gradients === 'auto' && hasNativeConvGradients()))
    return tf.conv2d(x, w, stride, padding);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x4, w4, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([x4, w4]);
    return {
      value: tf.conv2d(x4, w4, stride, padding),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        return convGrads(dy as tf.Tensor4D, xs, ws, stride, pad);
      },
    };
  });
  return op(x, w) as unknown as tf.Tensor4D;
}

/** Inserts stride-1 zeros between the spatial elements of dy: [b, h, w, c] -> [b, (h-1)s+1, (w-1)s+1, c]. */
function dilate(dy: tf.Tensor4D, s: number): tf.Tensor4D {
  if (s === 1) return dy;
  const [b, h, w, c] = dy.shape;
  return tf.tidy(
    () =>
      dy
        .reshape([b, h, 1, w, 1, c])
        .pad([
          [0, 0],
          [0, 0],
          [0, s - 1],
          [0, 0],
          [0, s - 1],
          [0, 0],
        ])
        .reshape([b, h * s, w * s, c])
        .slice([0, 0, 0, 0], [b, (h - 1) * s + 1, (w - 1) * s + 1, c]) as tf.Tensor4D,
  );
}

/** [dx, dw] of conv2d, from forward convolutions (see conv2d). */
export function convGrads(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: number,
): [tf.Tensor4D, tf.Tensor4D] {
  return tf.tidy(() => {
    const [, H, W] = x.shape;
    const k = w.shape[0];
    const d = dilate(dy, stride);
    const L = d.shape[1];
    const Lw = d.shape[2];
    // dx[i] = sum_k d[i + pad - k] w[k]: a stride-1 correlation of d with the flipped filter.
    const wFlip = tf.reverse(w, [0, 1]).transpose([0, 1, 3, 2]) as tf.Tensor4D;
    const lo = k - 1 - pad;
    const hiH = H + pad - L;
    const hiW = W + pad - Lw;
    let dpad = d.pad([
      [0, 0],
      [Math.max(0, lo), Math.max(0, hiH)],
      [Math.max(0, lo), Math.max(0, hiW)],
      [0, 0],
    ]) as tf.Tensor4D;
    if (lo < 0 || hiH < 0 || hiW < 0) {
      dpad = dpad.slice([0, Math.max(0, -lo), Math.max(0, -lo), 0], [-1, H + k - 1, W + k - 1, -1]);
    }
    const dx = tf.conv2d(dpad, wFlip, 1, 'valid');
    // dw[kh, kw, ci, co] = sum_{b, o} xpad[b, o + kh, ci] d[b, o, co].
    const xpad =
      pad > 0
        ? x.pad([
            [0, 0],
            [pad, pad],
            [pad, pad],
            [0, 0],
          ])
        : x;
    const xT = xpad.transpose([3, 1, 2, 0]) as tf.Tensor4D; // [ci, Hp, Wp, b]
    const dT = d.transpose([1, 2, 0, 3]) as tf.Tensor4D; // [L, Lw, b, co]
    let dw = tf.conv2d(xT, dT, 1, 'valid'); // [ci, Hp - L + 1, Wp - Lw + 1, co]
    if (dw.shape[1] !== k || dw.shape[2] !== k) dw = dw.slice([0, 0, 0, 0], [-1, k, k, -1]);
    return [dx, dw.transpose([1, 2, 0, 3]) as tf.Tensor4D];
  });
}
