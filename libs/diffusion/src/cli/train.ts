import { existsSync } from 'node:fs';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  createProgress,
  type FlagSpec,
  numFlag,
  oneOf,
  parseFlags,
  runCli,
  UsageError,
  usage,
} from '@fedsynth/cli-kit';
import { type BackendChoice, defaultThreads, selectBackend } from '../backend';
import { decodeModel, encodeModel } from '../checkpoint';
import { BatchSampler, loadSliceDataset } from '../data';
import { evaluateSlices } from '../evaluate';
import { describePlan, MemoryPlanError, planTrainingRun } from '../memory-plan';
import type { PredictionType } from '../objective';
import { DataParallelTrainer } from '../parallel';
import type { ScheduleName } from '../schedule';
import { DEFAULT_UNET_CONFIG, UNet, type UNetConfig, unetConfigFor } from '../unet';
import { decodeSafetensors, encodeSafetensors } from '../weights';

const FLAGS: Record<string, FlagSpec> = {
  data: { type: 'string', valueName: 'dir', description: 'dataset folder (SynthRAD2023 layout)' },
  out: { type: 'string', valueName: 'file', description: 'model file to write (.safetensors)' },
  size: { type: 'string', valueName: 'px', description: 'model input size', default: '64' },
  steps: { type: 'string', valueName: 'n', description: 'optimization steps', default: '2000' },
  batch: { type: 'string', valueName: 'n', description: 'slices per step', default: '8' },
  lr: { type: 'string', valueName: 'x', description: 'learning rate (AdamW)', default: '0.0002' },
  prediction: {
    type: 'string',
    valueName: 'epsilon|v|sample',
    description: 'what the network predicts',
    default: 'v',
  },
  schedule: {
    type: 'string',
    valueName: 'cosine|linear|scaled-linear',
    description: 'noise schedule (T = 1000)',
    default: 'cosine',
  },
  channels: {
    type: 'string',
    valueName: 'a,b,c',
    description: 'channels per U-Net level',
    default: DEFAULT_UNET_CONFIG.channels.join(','),
  },
  'res-blocks': {
    type: 'string',
    valueName: 'n',
    description: 'residual blocks per level',
    default: String(DEFAULT_UNET_CONFIG.numResBlocks),
  },
  ema: {
    type: 'string',
    valueName: 'decay',
    description: 'EMA decay of the weights (0 = off)',
    default: '0.999',
  },
  l1: {
    type: 'string',
    valueName: 'w',
    description: 'weight of the masked L1 term on the predicted x0',
    default: '0.1',
  },
  'val-every': {
    type: 'string',
    valueName: 'n',
    description: 'validate every n steps (0 = only at the end)',
    default: '500',
  },
  'val-slices': {
    type: 'string',
    valueName: 'n',
    description: 'validation slices scored each time',
    default: '32',
  },
  'ddim-steps': { type: 'string', valueName: 'n', description: 'DDIM steps for validation', default: '25' },
  'checkpoint-every': {
    type: 'string',
    valueName: 'n',
    description: 'save a resumable checkpoint every n steps',
    default: '100',
  },
  'max-minutes': {
    type: 'string',
    valueName: 'm',
    description: 'stop after this many minutes of training (0 = no limit)',
    default: '0',
  },
  backend: {
    type: 'string',
    valueName: 'name',
    description: 'auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu ($FEDSYNTH_BACKEND)',
    default: 'auto',
  },
  seed: { type: 'string', valueName: 'n', description: 'random seed', default: '0' },
  threads: {
    type: 'string',
    valueName: 'n',
    description:
      'training threads (data-parallel; default: all cores on wasm and cpu, 1 on the native backends)',
  },
  'memory-mb': {
    type: 'string',
    valueName: 'MiB',
    description:
      'tensor memory per training thread (default: planned from the backend and this machine); a batch that does not fit is split into micro-batches with the same update',
  },
  fresh: { type: 'boolean', description: 'start over even if a checkpoint of --out exists' },
};
const HELP = usage(
  'fedsynth-train',
  '--data DIR --out model.safetensors [flags]',
  'Trains the conditional diffusion U-Net centrally on a dataset (the baseline federated runs are\ncompared to). Resumes from its last checkpoint unless --fresh. Writes <out>, <out>.state and\n<out>.history.jsonl (loss and validation MAE/PSNR/SSIM in HU per evaluation).',
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-train', HELP, async () => {
    const { values: v } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!v.data) throw new UsageError('--data is required');
    if (!v.out) throw new UsageError('--out is required');
    const out = resolve(String(v.out));
    const size = numFlag(v, 'size', 16, 512, 64);
    const steps = numFlag(v, 'steps', 1, 10_000_000, 2000);
    const batch = numFlag(v, 'batch', 1, 1024, 8);
    const lr = numFlag(v, 'lr', 1e-7, 1, 2e-4, false);
    const prediction = oneOf<PredictionType>(v, 'prediction', ['epsilon', 'v', 'sample'], 'v');
    const schedule = oneOf<ScheduleName>(v, 'schedule', ['cosine', 'linear', 'scaled-linear'], 'cosine');
    const channels = String(v.channels ?? DEFAULT_UNET_CONFIG.channels.join(','))
      .split(',')
      .map((x) => Number(x));
    if (channels.some((c) => !Number.isInteger(c) || c < 1))
      throw new UsageError(`--channels: "${v.channels}" must be comma-separated positive integers`);
    const valEvery = numFlag(v, 'val-every', 0, 10_000_000, 500);
    const valSlices = numFlag(v, 'val-slices', 1, 100_000, 32);
    const ddimSteps = numFlag(v, 'ddim-steps', 1, 1000, 25);
    const ckptEvery = numFlag(v, 'checkpoint-every', 1, 10_000_000, 100);
    const maxMinutes = numFlag(v, 'max-minutes', 0, 1e6, 0, false);
    const seed = numFlag(v, 'seed', 0, 2 ** 31 - 1, 0);
    const backend = oneOf<BackendChoice>(
      v,
      'backend',
      ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'],
      'auto',
    );
    const info = await selectBackend(backend);
    process.stderr.write(`backend: ${info.backend} (${info.device})\n`);
    const data = await loadSliceDataset(resolve(String(v.data)), { size, seed });
    process.stderr.write(
      `data: ${data.train.length} training slices from ${data.trainSubjects.length} subjects, ${data.val.length} validation slices from ${data.valSubjects.length}\n`,
    );
    const statePath = `${out}.state`;
    const historyPath = `${out}.history.jsonl`;
    const config: UNetConfig = unetConfigFor(
      channels,
      numFlag(v, 'res-blocks', 1, 8, DEFAULT_UNET_CONFIG.numResBlocks),
    );
    let model: UNet;
    let resumed = false;
    if (!v.fresh && existsSync(out) && existsSync(statePath)) {
      model = decodeModel(new Uint8Array(await readFile(out)), out).model;
      resumed = true;
    } else {
      model = new UNet(config, seed);
      await writeFile(historyPath, '');
    }
    const threads = numFlag(v, 'threads', 1, 256, defaultThreads(info.tfjsBackend));
    const memoryMb = v['memory-mb'] === undefined ? undefined : numFlag(v, 'memory-mb', 16, 2 ** 24, 0);
    let plan: ReturnType<typeof planTrainingRun>;
    try {
      plan = planTrainingRun({
        config: model.config,
        size,
        batch,
        backend: info.backend,
        threads,
        budgetBytes: memoryMb === undefined ? undefined : memoryMb * 2 ** 20,
      });
    } catch (err) {
      if (err instanceof MemoryPlanError) throw new UsageError(`--size ${size}: ${err.message}`);
      throw err;
    }
    process.stderr.write(`${describePlan(plan)}\n`);
    const parallel = await DataParallelTrainer.create(
      model,
      {
        prediction,
        schedule,
        seed,
        emaDecay: numFlag(v, 'ema', 0, 0.99999, 0.999, false),
        l1Weight: numFlag(v, 'l1', 0, 100, 0.1, false),
        optimizer: { kind: 'adamw', lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4, clipNorm: 1 },
      },
      { threads, backend: info.backend, microBatch: plan.microBatch, checkpointing: plan.checkpointing },
    );
    const trainer = parallel.trainer;
    if (resumed) {
      trainer.importState(decodeSafetensors(new Uint8Array(await readFile(statePath)), statePath).arrays);
      process.stderr.write(`resuming ${out} at step ${trainer.optimizer.step}\n`);
    }
    process.stderr.write(
      `model: ${model.paramCount().toLocaleString()} parameters, prediction ${prediction}, schedule ${schedule}\n`,
    );
    const sampler = new BatchSampler(data.train, batch, seed + trainer.optimizer.step);
    const valSet = data.val.length
      ? data.val
          .filter((_, i) => i % Math.max(1, Math.floor(data.val.length / valSlices)) === 0)
          .slice(0, valSlices)
      : data.train.slice(0, valSlices);
    const save = async () => {
      // Model and state are each written atomically; the model holds the raw weights (the EMA is in the state).
      const modelBytes = await encodeModel(model, {
        step: String(trainer.optimizer.step),
        prediction,
        schedule,
        size: String(size),
      });
      await writeFile(`${out}.tmp`, modelBytes);
      await writeFile(`${statePath}.tmp`, encodeSafetensors(await trainer.exportState()));
      await rename(`${out}.tmp`, out);
      await rename(`${statePath}.tmp`, statePath);
    };
    const validate = async (step: number, loss: number) => {
      // Score the EMA weights, then put the raw weights back.
      const raw = await model.toNamedArrays();
      trainer.applyEma();
      const m = await evaluateSlices(model, valSet, {
        schedule: trainer.schedule,
        prediction,
        steps: ddimSteps,
        seed,
      });
      model.loadNamedArrays(raw);
      const line = {
        step,
        loss: Number(loss.toFixed(5)),
        maeHU: Number(m.mae.toFixed(2)),
        psnr: Number(m.psnr.toFixed(3)),
        ssim: Number(m.ssim.toFixed(4)),
        slices: m.slices,
        elapsedS: Math.round((Date.now() - started) / 1000),
      };
      await appendFile(historyPath, `${JSON.stringify(line)}\n`);
      process.stderr.write(
        `\nvalidation @ ${step}: MAE ${line.maeHU} HU, PSNR ${line.psnr} dB, SSIM ${line.ssim} (${m.slices} slices)\n`,
      );
      return line;
    };
    const started = Date.now();
    const bar = createProgress('training', steps);
    let lossAvg = Number.NaN;
    let last: Awaited<ReturnType<typeof validate>> | undefined;
    while (trainer.optimizer.step < steps) {
      const r = await parallel.step(sampler.next());
      lossAvg = Number.isNaN(lossAvg) ? r.loss : 0.98 * lossAvg + 0.02 * r.loss;
      const step = trainer.optimizer.step;
      bar.tick(step, { loss: lossAvg });
      if (step % ckptEvery === 0) await save();
      if (valEvery > 0 && step % valEvery === 0) last = await validate(step, lossAvg);
      if (maxMinutes > 0 && Date.now() - started > maxMinutes * 60_000) {
        process.stderr.write(`\nstopping at step ${step}: --max-minutes ${maxMinutes} reached\n`);
        break;
      }
    }
    bar.done({ loss: lossAvg });
    if (!last || last.step !== trainer.optimizer.step) last = await validate(trainer.optimizer.step, lossAvg);
    // The delivered model carries the EMA weights; the state keeps everything to resume.
    await save();
    trainer.applyEma();
    await writeFile(
      `${out}.tmp`,
      await encodeModel(model, {
        step: String(trainer.optimizer.step),
        prediction,
        schedule,
        size: String(size),
        weights: 'ema',
      }),
    );
    await rename(`${out}.tmp`, out);
    process.stdout.write(`${JSON.stringify({ out, steps: trainer.optimizer.step, ...last })}\n`);
    await parallel.dispose();
    model.dispose();
    return 0;
  });
}
