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
import { DEFAULT_UNET_CONFIG, UNet, type UNetConfig, unetConfigFor, validateUNetConfig } from '../unet';
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
  init: {
    type: 'string',
    valueName: 'file',
    description:
      "start from this model's weights (e.g. a federation's global model) instead of a fresh initialization; its architecture is used, and its size, prediction and schedule unless the same flags are given (they must agree)",
  },
  fresh: { type: 'boolean', description: 'start over even if a checkpoint of --out exists' },
};
const HELP = usage(
  'fedsynth-train',
  '--data DIR --out model.safetensors [flags]',
  'Trains the conditional diffusion U-Net centrally on a dataset (the baseline federated runs are\ncompared to), from a fresh initialization or, with --init, from a saved model. Resumes from its\nlast checkpoint unless --fresh (with --init, an existing checkpoint is refused unless --fresh).\nWrites <out>, <out>.state and <out>.history.jsonl (loss and validation MAE/PSNR/SSIM in HU per\nevaluation).',
  FLAGS,
);

/** The values an --init model's metadata gives for the run; absent where it says nothing. */
interface InitSettings {
  size?: number;
  prediction?: PredictionType;
  schedule?: ScheduleName;
}

const PREDICTIONS: readonly PredictionType[] = ['epsilon', 'v', 'sample'];
const SCHEDULES: readonly ScheduleName[] = ['cosine', 'linear', 'scaled-linear'];

/** Reads the run settings from an --init model's metadata; a value it cannot use is an error naming the file. */
function initSettings(meta: Record<string, string>, path: string): InitSettings {
  const out: InitSettings = {};
  if (meta.size !== undefined) {
    const n = Number(meta.size);
    if (!Number.isInteger(n) || n < 16 || n > 512)
      throw new Error(`--init ${path}: its metadata gives size "${meta.size}", not an integer in [16, 512]`);
    out.size = n;
  }
  if (meta.prediction !== undefined) {
    if (!PREDICTIONS.includes(meta.prediction as PredictionType))
      throw new Error(
        `--init ${path}: its metadata gives prediction "${meta.prediction}", not one of ${PREDICTIONS.join(', ')}`,
      );
    out.prediction = meta.prediction as PredictionType;
  }
  if (meta.schedule !== undefined) {
    if (!SCHEDULES.includes(meta.schedule as ScheduleName))
      throw new Error(
        `--init ${path}: its metadata gives schedule "${meta.schedule}", not one of ${SCHEDULES.join(', ')}`,
      );
    out.schedule = meta.schedule as ScheduleName;
  }
  return out;
}

/**
 * A flag against the --init model: the model's value where the flag is not given, the flag's where
 * the model says nothing, and a usage error naming both when both are given and differ.
 */
function agree<T extends string | number>(
  flag: string,
  given: T | undefined,
  fromModel: T | undefined,
  fallback: T,
  path: string,
): T {
  if (given !== undefined && fromModel !== undefined && given !== fromModel)
    throw new UsageError(
      `--${flag} ${given} disagrees with --init ${path}, which was made with ${flag} ${fromModel}; leave out --${flag} to use the model's`,
    );
  return given ?? fromModel ?? fallback;
}

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
    const statePath = `${out}.state`;
    const historyPath = `${out}.history.jsonl`;
    const canResume = !v.fresh && existsSync(out) && existsSync(statePath);
    // --init: the model to start from. Its metadata is read first, so that flags which disagree
    // with it fail before any work; its weights are loaded once the backend is up.
    let init: { path: string; bytes: Uint8Array; config: UNetConfig; settings: InitSettings } | undefined;
    if (v.init !== undefined) {
      const path = resolve(String(v.init));
      if (canResume)
        throw new UsageError(
          `--init ${path}: ${statePath} holds a run to resume; pass --fresh to start over from ${path} (the checkpoint is overwritten), or leave out --init to resume it`,
        );
      let buf: Buffer;
      try {
        buf = await readFile(path);
      } catch (err) {
        throw new Error(`--init ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
      }
      const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      const { metadata } = decodeSafetensors(bytes, path);
      let config: UNetConfig;
      try {
        config = JSON.parse(metadata['fedsynth.unet'] ?? '');
        validateUNetConfig(config);
      } catch (err) {
        throw new Error(
          `--init ${path}: ${metadata['fedsynth.unet'] ? `invalid model configuration (${(err as Error).message})` : 'no fedsynth.unet configuration in the metadata; not a fedsynth model'}`,
        );
      }
      init = { path, bytes, config, settings: initSettings(metadata, path) };
    }
    const given = <T>(name: string, read: () => T): T | undefined =>
      v[name] === undefined ? undefined : read();
    const sizeFlag = given('size', () => numFlag(v, 'size', 16, 512));
    const predictionFlag = given('prediction', () =>
      oneOf<PredictionType>(v, 'prediction', PREDICTIONS, 'v'),
    );
    const scheduleFlag = given('schedule', () => oneOf<ScheduleName>(v, 'schedule', SCHEDULES, 'cosine'));
    const channelsFlag = given('channels', () => {
      const c = String(v.channels)
        .split(',')
        .map((x) => Number(x));
      if (c.some((x) => !Number.isInteger(x) || x < 1))
        throw new UsageError(`--channels: "${v.channels}" must be comma-separated positive integers`);
      return c;
    });
    const resBlocksFlag = given('res-blocks', () => numFlag(v, 'res-blocks', 1, 8));
    const ip = init?.path ?? '';
    const size = agree('size', sizeFlag, init?.settings.size, 64, ip);
    const prediction = agree<PredictionType>(
      'prediction',
      predictionFlag,
      init?.settings.prediction,
      'v',
      ip,
    );
    const schedule = agree<ScheduleName>('schedule', scheduleFlag, init?.settings.schedule, 'cosine', ip);
    // The architecture is the init model's: --channels and --res-blocks may only repeat it.
    const channels = agree(
      'channels',
      channelsFlag?.join(','),
      init?.config.channels.join(','),
      DEFAULT_UNET_CONFIG.channels.join(','),
      ip,
    )
      .split(',')
      .map(Number);
    const resBlocks = agree(
      'res-blocks',
      resBlocksFlag,
      init?.config.numResBlocks,
      DEFAULT_UNET_CONFIG.numResBlocks,
      ip,
    );
    const steps = numFlag(v, 'steps', 1, 10_000_000, 2000);
    const batch = numFlag(v, 'batch', 1, 1024, 8);
    const lr = numFlag(v, 'lr', 1e-7, 1, 2e-4, false);
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
    let model: UNet;
    let resumed = false;
    if (init) {
      const conditionChannels = data.train[0].source.length / (size * size);
      if (init.config.inChannels !== conditionChannels + 1 || init.config.outChannels !== 1)
        throw new Error(
          `--init ${init.path}: the model takes ${init.config.inChannels} input channels and gives ${init.config.outChannels}; this data needs ${conditionChannels + 1} (the noisy target and ${conditionChannels} condition channel${conditionChannels === 1 ? '' : 's'}) and 1`,
        );
      model = decodeModel(init.bytes, init.path).model;
      await writeFile(historyPath, '');
      process.stderr.write(
        `starting from ${init.path}: channels ${channels.join(',')}, ${resBlocks} residual block${resBlocks === 1 ? '' : 's'} per level, size ${size}\n`,
      );
    } else if (canResume) {
      model = decodeModel(new Uint8Array(await readFile(out)), out).model;
      resumed = true;
    } else {
      model = new UNet(unetConfigFor(channels, resBlocks), seed);
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
