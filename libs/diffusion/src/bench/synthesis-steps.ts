/**
 * DDIM step counts compared on quality and time: synthesizes the slices of a dataset (every
 * subject's slices, or up to --slices of them, evenly spaced) with a trained model at each step
 * count and scores them against the real CT (MAE, PSNR, SSIM in HU inside the body, per slice).
 * Prints, last, one JSON object: {model, size, backend, slices, results: [{steps, mae, psnr, ssim,
 * seconds, secondsPerSlice}], volume256x100: {steps, minutes}[]}, the last extrapolated from the
 * per-slice time of a forward pass at 256 px measured here.
 * Run: npm run bench:synthesis -- --model model.safetensors --data DIR [--steps 10,25 --slices 48]
 */
import { parseArgs } from 'node:util';
import { type BackendChoice, selectBackend } from '../backend';
import { loadModel } from '../checkpoint';
import { loadSliceDataset } from '../data';
import { evaluateSlices } from '../evaluate';
import { memoryBudget, planSynthesis } from '../memory-plan';
import type { PredictionType } from '../objective';
import { makeSchedule, type ScheduleName } from '../schedule';
import { tf } from '../tf';
import { DEFAULT_UNET_CONFIG, UNet } from '../unet';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      steps: { type: 'string', default: '10,25' },
      slices: { type: 'string', default: '48' },
      backend: { type: 'string', default: 'auto' },
    },
  });
  if (!values.model || !values.data) throw new Error('--model and --data are required');
  const info = await selectBackend(values.backend as BackendChoice);
  const { model, metadata } = await loadModel(values.model);
  const size = Number(metadata.size ?? 64);
  const data = await loadSliceDataset(values.data, { size, valFraction: 0 });
  const all = [...data.train, ...data.val];
  const n = Math.min(all.length, Number(values.slices));
  const slices = Array.from({ length: n }, (_, i) => all[Math.floor(((i + 0.5) * all.length) / n)]);
  const batchSize = planSynthesis(model.config, size, 32, memoryBudget(info.backend));
  const results = [];
  for (const steps of String(values.steps).split(',').map(Number)) {
    const t0 = performance.now();
    const r = await evaluateSlices(model, slices, {
      schedule: makeSchedule((metadata.schedule ?? 'cosine') as ScheduleName),
      prediction: (metadata.prediction ?? 'v') as PredictionType,
      steps,
      seed: 7,
      batchSize,
    });
    const seconds = (performance.now() - t0) / 1000;
    results.push({
      steps,
      mae: Number(r.mae.toFixed(1)),
      psnr: Number(r.psnr.toFixed(2)),
      ssim: Number(r.ssim.toFixed(4)),
      seconds: Number(seconds.toFixed(1)),
      secondsPerSlice: Number((seconds / n).toFixed(3)),
    });
    process.stderr.write(`${steps} steps: ${JSON.stringify(results[results.length - 1])}\n`);
  }
  // The whole 256x256x100 volume of a 256-px default model: forward passes of one pass's slices.
  const big = new UNet(DEFAULT_UNET_CONFIG, 1);
  const per = planSynthesis(big.config, 256, 32, memoryBudget(info.backend));
  const t0 = performance.now();
  tf.tidy(() => {
    big.apply(tf.zeros([per, 256, 256, 2]), tf.fill([per], 500, 'int32')).dataSync();
  });
  const secondsPerSliceStep = (performance.now() - t0) / 1000 / per;
  big.dispose();
  process.stdout.write(
    `${JSON.stringify({
      model: values.model,
      size,
      backend: info.backend,
      slices: n,
      batchSize,
      results,
      volume256x100: String(values.steps)
        .split(',')
        .map(Number)
        .map((steps) => ({ steps, minutes: Number(((secondsPerSliceStep * 100 * steps) / 60).toFixed(1)) })),
      secondsPerSliceStep256: Number(secondsPerSliceStep.toFixed(2)),
    })}\n`,
  );
  model.dispose();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
