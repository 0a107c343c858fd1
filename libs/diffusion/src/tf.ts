/**
 * The one place tfjs is imported: the union package registers every op's gradient (importing
 * tfjs-core alone does not) and the cpu backend; the wasm backend registers itself on import.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor4D = tf.Tensor4D;
