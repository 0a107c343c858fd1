import { tf } from './tf';
import type { UNet } from './unet';
import { layoutOf, unflattenCanonical } from './weights';

/**
 * A fixed direction in a model's weight space, given as a flat vector in the canonical order
 * (tensors sorted by name, PyTorch layout: what flattenCanonical gives), held as tensors in the
 * model's own layout so that it can be added many times cheaply: `apply(scale)` does
 * w += scale * direction. SCAFFOLD's drift correction applies one after every local step.
 */
export class WeightShift {
  private constructor(
    private readonly model: UNet,
    private readonly tensors: Map<string, tf.Tensor>,
  ) {}

  /** The direction `flat` (canonical order) for `model`; its length must be the model's values. */
  static async of(model: UNet, flat: Float32Array): Promise<WeightShift> {
    const layout = layoutOf(await model.toNamedArrays());
    return new WeightShift(model, model.paramTensors(unflattenCanonical(flat, layout), 'weight shift'));
  }

  /** w += scale * direction, for every parameter. */
  apply(scale: number): void {
    if (!Number.isFinite(scale)) throw new RangeError(`weight shift scale is ${scale}`);
    tf.tidy(() => {
      for (const [name, t] of this.tensors) {
        const p = this.model.params.get(name)!;
        p.assign(p.add(t.mul(scale)));
      }
    });
  }

  dispose(): void {
    tf.dispose([...this.tensors.values()]);
    this.tensors.clear();
  }
}
