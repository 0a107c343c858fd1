import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createProgress } from '@fedsynth/cli-kit';
import type { BackendName } from '@fedsynth/diffusion';
import { DEFAULT_TASK, formatTask, kindOf, parseTask, type TaskSpec } from '@fedsynth/imaging';
import {
  DataCache,
  evaluateLocally,
  type LocalEval,
  loadDiffusion,
  trainLocally,
} from '../agent/local-training';
import {
  type AgentConfig,
  configPath,
  defaultStateDir,
  loadAgentConfig,
  modalityMatchOf,
} from '../config/agent-config';
import { type Command, STATE_DIR_FLAG } from './shared';

/**
 * Commands that use a model at the site only: `evaluate` scores a model on the site's validation
 * split, `finetune` trains the global model further on the site's data and keeps the result here.
 * Neither opens a connection: nothing leaves the site, and the audit log gets no line.
 */

const stateDirOf = (v: Record<string, unknown>) => resolve(String(v['state-dir'] ?? defaultStateDir()));

/** What these commands need of the settings: agent.json's where there is one, else --data-dir alone. */
type LocalSettings = Pick<
  AgentConfig,
  'dataDir' | 'modalities' | 'modalityFiles' | 'dicomSeries' | 'backend'
>;

function configOf(v: Record<string, unknown>): LocalSettings {
  const stateDir = stateDirOf(v);
  const flags: Partial<Record<keyof AgentConfig, unknown>> = {};
  if (v['data-dir'] !== undefined) flags.dataDir = resolve(String(v['data-dir']));
  if (existsSync(configPath(stateDir)))
    return loadAgentConfig({ stateDir, env: { ...process.env }, flags, requireFile: true });
  // A site that has not run `init` here (an analysis machine): only the data folder is needed.
  return {
    dataDir: flags.dataDir as string | undefined,
    modalities: { source: 'mr', target: 'ct', mask: 'mask' },
    backend: 'auto',
  };
}

/** The model file: --model, else the latest global model this site received. */
function modelPath(v: Record<string, unknown>, stateDir: string): string {
  if (v.model) return resolve(String(v.model));
  const latest = join(stateDir, 'models', 'latest');
  if (!existsSync(latest))
    throw new Error(
      `no global model yet in ${join(stateDir, 'models')}: the agent stores one after its first evaluated round (or pass --model)`,
    );
  return join(stateDir, 'models', `${readFileSync(latest, 'utf8').trim()}.safetensors`);
}

/** The task a model was trained for (its metadata), or --task, or MRI -> CT. */
function taskOf(v: Record<string, unknown>, metadata: Record<string, string>): TaskSpec {
  const given = v.task === undefined ? null : parseTask(String(v.task));
  const stored = metadata.task ? parseTask(metadata.task) : null;
  if (given && stored && formatTask(given) !== formatTask(stored))
    throw new Error(
      `--task ${formatTask(given)} disagrees with the model, which was trained for ${formatTask(stored)}`,
    );
  return given ?? stored ?? DEFAULT_TASK;
}

function intFlag(v: Record<string, unknown>, name: string, lo: number, hi: number, def: number): number {
  const raw = v[name];
  const n = raw === undefined ? def : Number(raw);
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new Error(`--${name} must be an integer in [${lo}, ${hi}]`);
  return n;
}

const COMMON = {
  'state-dir': STATE_DIR_FLAG,
  'data-dir': {
    type: 'string' as const,
    valueName: 'dir',
    description: 'local subjects (default: from agent.json)',
  },
  model: {
    type: 'string' as const,
    valueName: 'file',
    description: 'model (.safetensors; default: the latest global model this site received)',
  },
  task: {
    type: 'string' as const,
    valueName: 'task',
    description: "the model's task, e.g. t1+t2-to-ct (default: from the model)",
  },
  backend: {
    type: 'string' as const,
    valueName: 'name',
    description: 'auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu',
  },
};

interface Loaded {
  stateDir: string;
  path: string;
  bytes: Uint8Array;
  metadata: Record<string, string>;
  task: TaskSpec;
  data: DataCache;
  size: number;
  backend: BackendName;
}

async function load(v: Record<string, unknown>): Promise<Loaded> {
  const stateDir = stateDirOf(v);
  const config = configOf(v);
  if (!config.dataDir) throw new Error('no data directory: set dataDir in agent.json or pass --data-dir');
  const path = modelPath(v, stateDir);
  const d = loadDiffusion();
  const info = await d.selectBackend(
    (v.backend as never) ?? (process.env.FEDSYNTH_BACKEND as never) ?? config.backend,
  );
  const bytes = new Uint8Array(readFileSync(path));
  const { model, metadata } = d.decodeModel(bytes, path);
  model.dispose();
  return {
    stateDir,
    path,
    bytes,
    metadata,
    task: taskOf(v, metadata),
    data: new DataCache(config.dataDir, config.modalities, modalityMatchOf(config)),
    size: Number(metadata.size ?? 64),
    backend: info.backend,
  };
}

async function score(l: Loaded, bytes: Uint8Array, steps: number, maxSlices: number): Promise<LocalEval> {
  return evaluateLocally({
    checkpoint: bytes,
    data: (size) => l.data.get(size, l.task),
    maxSlices,
    steps,
  });
}

const figures = (task: TaskSpec, e: LocalEval) => ({
  mae: Number(e.mae.toFixed(kindOf(task.target) === 'ct' ? 2 : 5)),
  maeUnit: kindOf(task.target) === 'ct' ? 'HU' : 'normalized 0..1',
  psnr: Number(e.psnr.toFixed(3)),
  ssim: Number(e.ssim.toFixed(4)),
  slices: e.count,
});

const evaluateCmd: Command = {
  name: 'evaluate',
  summary: "score a model on this site's validation split (nothing is sent)",
  description:
    "Synthesizes the task's target for the site's validation subjects (the same split as training)\n" +
    'with a fixed-seed DDIM and prints MAE, PSNR and SSIM inside the body as one JSON line: HU for\n' +
    'CT, the normalized 0..1 scale for MR and PET. Runs at the site only; nothing is sent anywhere.',
  flags: {
    ...COMMON,
    steps: { type: 'string', valueName: 'n', description: 'DDIM steps', default: '10' },
    'max-slices': {
      type: 'string',
      valueName: 'n',
      description: 'validation slices scored (evenly spaced)',
      default: '64',
    },
  },
  async run(v) {
    const l = await load(v);
    const e = await score(
      l,
      l.bytes,
      intFlag(v, 'steps', 1, 1000, 10),
      intFlag(v, 'max-slices', 1, 100_000, 64),
    );
    process.stdout.write(
      `${JSON.stringify({ model: l.path, task: formatTask(l.task), ...figures(l.task, e) })}\n`,
    );
    return 0;
  },
};

const finetuneCmd: Command = {
  name: 'finetune',
  summary: 'train the global model further on local data; the result stays here',
  description:
    "Starts from the latest global model (or --model), trains it on this site's training split\n" +
    'for --steps steps, scores it before and after on the validation split, and writes the\n' +
    'personalized model (default: models/finetuned-<time>.safetensors in the state folder). It is\n' +
    'never uploaded: the command opens no connection and the audit log gets no line.',
  flags: {
    ...COMMON,
    steps: { type: 'string', valueName: 'n', description: 'training steps', default: '200' },
    batch: { type: 'string', valueName: 'n', description: 'slices per step', default: '8' },
    lr: { type: 'string', valueName: 'rate', description: 'learning rate (Adam)', default: '1e-4' },
    out: { type: 'string', valueName: 'file', description: 'where to write the fine-tuned model' },
    'eval-steps': { type: 'string', valueName: 'n', description: 'DDIM steps of the scores', default: '10' },
  },
  async run(v) {
    const l = await load(v);
    const steps = intFlag(v, 'steps', 1, 10_000_000, 200);
    const batch = intFlag(v, 'batch', 1, 1024, 8);
    const lr = Number(v.lr ?? 1e-4);
    if (!(lr > 0 && lr < 1)) throw new Error('--lr must be in (0, 1)');
    const evalSteps = intFlag(v, 'eval-steps', 1, 1000, 10);
    const d = loadDiffusion();
    const data = await l.data.get(l.size, l.task);
    const before = await score(l, l.bytes, evalSteps, 64);
    const bar = createProgress('fine-tuning', steps);
    const u = await trainLocally({
      checkpoint: l.bytes,
      plan: {
        localSteps: steps,
        batchSize: batch,
        lr,
        size: l.size,
        prediction: (l.metadata.prediction ?? 'sample') as 'sample',
        schedule: (l.metadata.schedule ?? 'cosine') as 'cosine',
        fedProxMu: 0,
        dp: { clip: 1, noiseMultiplier: 0, delta: 1e-5 },
      },
      limits: { maxLocalSteps: steps, maxBatch: batch },
      data,
      seed: 7,
      backend: l.backend,
      onStep: (s, _t, loss) => bar.tick(s, { loss }),
    });
    bar.done({ loss: u.loss });
    const { arrays, metadata } = d.decodeSafetensors(l.bytes, l.path);
    const base = d.flattenCanonical(arrays);
    for (let i = 0; i < base.length; i++) base[i] += u.delta[i];
    const out = v.out
      ? resolve(String(v.out))
      : join(l.stateDir, 'models', `finetuned-${new Date().toISOString().replace(/[:.]/g, '-')}.safetensors`);
    const bytes = d.encodeSafetensors(d.unflattenCanonical(base, d.layoutOf(arrays)), {
      ...metadata,
      finetunedFrom: l.path,
      finetuneSteps: String(steps),
    });
    await mkdir(dirname(out), { recursive: true, mode: 0o700 });
    await writeFile(out, bytes, { mode: 0o600 });
    const after = await score(l, bytes, evalSteps, 64);
    process.stdout.write(
      `${JSON.stringify({
        out,
        from: l.path,
        task: formatTask(l.task),
        steps,
        trainSlices: data.train.length,
        before: figures(l.task, before),
        after: figures(l.task, after),
        seconds: Number((u.ms / 1000).toFixed(1)),
      })}\n`,
    );
    return 0;
  },
};

export const LOCAL_MODEL_COMMANDS: Command[] = [evaluateCmd, finetuneCmd];
