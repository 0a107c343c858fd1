import { beforeAll, describe, expect, it } from 'vitest';
import { randomizeWeights, TINY } from './testing';
import { tf } from './tf';
import { UNet } from './unet';
import { WeightShift } from './weight-shift';
import { flattenCanonical } from './weights';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('WeightShift', () => {
  it('adds scale x a canonical-order direction to the weights, whatever the layout of each tensor', async () => {
    const model = new UNet(TINY, 1);
    randomizeWeights(model, 2, 0.1);
    const before = flattenCanonical(await model.toNamedArrays());
    // A direction with a distinct value at every position, so a transposed or misplaced tensor shows.
    const dir = Float32Array.from(before, (_, i) => Math.sin(i * 0.013) + i / before.length);
    const shift = await WeightShift.of(model, dir);
    shift.apply(0.25);
    shift.apply(-0.75);
    shift.dispose();
    const after = flattenCanonical(await model.toNamedArrays());
    let worst = 0;
    for (let i = 0; i < before.length; i++)
      worst = Math.max(worst, Math.abs(after[i] - (before[i] - 0.5 * dir[i])));
    expect(worst).toBeLessThan(1e-6);
    expect(() => shift.apply(Number.NaN)).toThrow('weight shift scale is NaN');
    await expect(WeightShift.of(model, new Float32Array(3))).rejects.toThrow(/flat vector has 3 values/);
    model.dispose();
  });
});
