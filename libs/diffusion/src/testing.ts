import { tf } from './tf';
import { UNet, type UNetConfig } from './unet';

/** A tiny model configuration for fast tests. */
export const TINY: UNetConfig = {
  inChannels: 2,
  outChannels: 1,
  channels: [8, 16],
  numResBlocks: 1,
  attentionLevels: [false, true],
  numHeadChannels: 8,
  normNumGroups: 4,
  normEps: 1e-6,
};

/** Replaces every parameter by seeded random values (so zero-initialized layers matter in tests). */
export function randomizeWeights(model: UNet, seed: number, scale = 0.2): void {
  let s = seed;
  for (const v of model.params.values()) {
    const r = tf.randomUniform(v.shape, -scale, scale, 'float32', s++);
    v.assign(r);
    r.dispose();
  }
}
