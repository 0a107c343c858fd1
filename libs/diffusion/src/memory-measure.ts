import type { PassKind } from './memory-plan';
import { tf } from './tf';
import { Trainer } from './trainer';
import { UNet, type UNetConfig } from './unet';

/**
 * Measures, with `tf.profile`, the peak tensor bytes a pass of `slices` slices of `size` px adds
 * on the current backend: a training step's gradients (kept or checkpointed activations), or a
 * forward pass without gradients. What the memory planner's estimates are fitted to and tested on.
 */
export async function measurePeakBytes(
  config: UNetConfig,
  size: number,
  slices: number,
  kind: PassKind,
): Promise<number> {
  const model = new UNet(config, 1);
  model.checkpointing = kind === 'checkpointed';
  const n = slices * size * size;
  const batch = {
    count: slices,
    size,
    source: Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
    target: Float32Array.from({ length: n }, (_, i) => Math.cos(i)),
  };
  const trainer = kind === 'forward' ? null : new Trainer(model, { emaDecay: 0 });
  try {
    const base = tf.memory().numBytes;
    const prof = await tf.profile(async () => {
      if (trainer) {
        const part = await trainer.shardGrads(batch, 0, 0, slices, false);
        tf.dispose(Object.values(part.grads));
      } else {
        tf.tidy(() => {
          model
            .apply(tf.zeros([slices, size, size, config.inChannels]), tf.fill([slices], 10, 'int32'))
            .dataSync();
        });
      }
    });
    return prof.peakBytes - base;
  } finally {
    trainer?.dispose();
    model.dispose();
  }
}
