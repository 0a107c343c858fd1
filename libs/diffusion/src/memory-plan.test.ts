import { beforeAll, describe, expect, it } from 'vitest';
import { measurePeakBytes } from './memory-measure';
import {
  estimatePeakBytes,
  fixedTrainingBytes,
  MemoryPlanError,
  type PassKind,
  planSynthesis,
  planTraining,
} from './memory-plan';
import { tf } from './tf';
import { Trainer } from './trainer';
import { DEFAULT_UNET_CONFIG, UNet, unetConfigFor } from './unet';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

const MiB = 2 ** 20;

describe('memory planner', () => {
  it('never underestimates the peak tfjs measures, and stays within 2.1x, on networks it was not fitted to', async () => {
    // The coefficients were fitted to the default U-Net; these differ in depth, widths, residual
    // blocks and attention levels.
    const attentionAtLevel2 = {
      ...unetConfigFor([16, 32, 64, 64], 1),
      attentionLevels: [false, false, true, false],
    };
    const wide = unetConfigFor([32, 64, 128], 3);
    const cases = [
      [attentionAtLevel2, 64, 2],
      [attentionAtLevel2, 128, 1],
      [wide, 64, 1],
    ] as const;
    for (const [config, size, slices] of cases) {
      for (const kind of ['train', 'checkpointed', 'forward'] as PassKind[]) {
        const measured = await measurePeakBytes(config, size, slices, kind);
        // The measurement starts with the model's weights in memory; the estimate counts them.
        const fixed = kind === 'forward' ? fixedTrainingBytes(config) / 7 : fixedTrainingBytes(config);
        const estimated = estimatePeakBytes(config, size, slices, kind) - fixed;
        const ratio = estimated / measured;
        const what = `${config.channels} at ${size} px x ${slices}, ${kind}: estimated ${(estimated / MiB).toFixed(0)} MiB, measured ${(measured / MiB).toFixed(0)} MiB`;
        expect(ratio, what).toBeGreaterThanOrEqual(1);
        expect(ratio, what).toBeLessThanOrEqual(2.1);
      }
    }
  }, 120_000);

  it('splits a batch that does not fit into micro-batches, checkpoints when that fits more, and names what fits when nothing does', () => {
    const c = DEFAULT_UNET_CONFIG;
    const roomy = planTraining(c, 64, 8, 64 * 1024 * MiB);
    expect(roomy).toMatchObject({ microBatch: 8, checkpointing: false });
    const wasm = planTraining(c, 256, 8, 3 * 1024 * MiB);
    expect(wasm.checkpointing).toBe(true);
    expect(wasm.microBatch).toBe(1);
    expect(wasm.peakBytes).toBeLessThanOrEqual(3 * 1024 * MiB);
    expect(() => planTraining(c, 512, 8, 3 * 1024 * MiB)).toThrow(MemoryPlanError);
    expect(() => planTraining(c, 512, 8, 3 * 1024 * MiB)).toThrow(
      /512x512 slice needs about \d+ MiB.*largest size that fits is 320 px/,
    );
    expect(planSynthesis(c, 256, 16, 3 * 1024 * MiB)).toBe(5);
  });

  it('trains one step of the default U-Net at 128 px, batch 8, on wasm within a 1 GiB plan', async () => {
    const plan = planTraining(DEFAULT_UNET_CONFIG, 128, 8, 1024 * MiB);
    expect(plan.checkpointing).toBe(true);
    expect(plan.microBatch).toBeGreaterThanOrEqual(1);
    expect(plan.microBatch).toBeLessThan(8);
    const model = new UNet(DEFAULT_UNET_CONFIG, 2);
    model.checkpointing = plan.checkpointing;
    const trainer = new Trainer(model, { seed: 1 });
    const px = 128 * 128;
    const batch = {
      count: 8,
      size: 128,
      source: Float32Array.from({ length: 8 * px }, (_, i) => Math.sin(i * 0.001)),
      target: Float32Array.from({ length: 8 * px }, (_, i) => Math.cos(i * 0.002)),
    };
    const r = await trainer.step(batch, plan.microBatch);
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(r.gradNorm).toBeGreaterThan(0);
    // The wasm heap (which only grows) stayed within the plan, far from its 4 GiB limit.
    const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    expect(heap).toBeLessThan(1.5 * 1024 * MiB);
    trainer.dispose();
    model.dispose();
  }, 180_000);
});
