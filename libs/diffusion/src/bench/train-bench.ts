/**
 * One training step of the default U-Net (64x64, batch 8, Adam; --size, --batch) on the selected
 * backend with all cores, micro-batched and checkpointed as the memory planner decides, against
 * the same network in PyTorch on the same machine in the same run (bench/diffusion/unet_peer.py),
 * plus forward-pass parity on the same weights and input (as many slices as fit one pass). Prints,
 * last, one JSON object: {backend, size, batch, params, threads, microBatch, checkpointing, stepMs,
 * peakRssMiB, gflopsPerStep, gflopsPerSec, torchStepMs, ratio, parityMaxAbsDiff}.
 * Run: npm run bench:train [-- --size 256 --batch 8]  (installs Debian's python3-torch when it is
 * missing and we are root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendChoice, selectBackend } from '../backend';
import { encodeModel } from '../checkpoint';
import { memoryBudget, planSynthesis, planTrainingRun } from '../memory-plan';
import { DataParallelTrainer } from '../parallel';
import { tf } from '../tf';
import { DEFAULT_UNET_CONFIG, parameterSpecs, UNet, type UNetConfig } from '../unet';

const PY = '/usr/bin/python3';

function ensureTorch(): void {
  if (spawnSync(PY, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0) return;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) throw new Error('PyTorch is missing: sudo apt-get install -y python3-torch python3-numpy');
  process.stderr.write('installing python3-torch (Debian) for the PyTorch peer ...\n');
  execFileSync(
    'apt-get',
    ['install', '-y', '-qq', '--no-install-recommends', 'python3-torch', 'python3-numpy'],
    { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
  );
}

/** Multiply-adds of convolutions and linear layers in one forward pass, times 2. */
export function forwardFlops(c: UNetConfig, size: number, batch: number): number {
  const L = c.channels.length;
  const sizeOf = (name: string): number => {
    if (name.startsWith('conv_in') || name.startsWith('out.')) return size;
    if (name.startsWith('time_embed')) return 1;
    const down = /^down_blocks\.(\d+)\.(downsampler)?/.exec(name);
    if (down) return size / 2 ** (Number(down[1]) + (down[2] ? 1 : 0));
    if (name.startsWith('middle_block')) return size / 2 ** (L - 1);
    const up = /^up_blocks\.(\d+)\.(upsampler)?/.exec(name);
    if (up) return size / 2 ** (L - 1 - Number(up[1]) - (up[2] ? 1 : 0));
    return size;
  };
  let flops = 0;
  for (const s of parameterSpecs(c)) {
    if (!s.name.endsWith('weight') || s.kind === 'norm-weight') continue;
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.shape.length === 4) flops += 2 * n * sizeOf(s.name) ** 2 * batch;
    else if (s.name.includes('time_emb') || s.name.includes('time_embed')) flops += 2 * n * batch;
    else flops += 2 * n * sizeOf(s.name) ** 2 * batch; // attention projections act per token
  }
  return flops;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'auto' },
      steps: { type: 'string', default: '5' },
      size: { type: 'string', default: '64' },
      batch: { type: 'string', default: '8' },
      threads: { type: 'string' },
      'memory-mb': { type: 'string' },
    },
  });
  const size = Number(values.size);
  const batch = Number(values.batch);
  const steps = Number(values.steps);
  ensureTorch();
  const info = await selectBackend(values.backend as BackendChoice);
  process.stderr.write(`backend: ${info.backend} (${info.device})\n`);
  const work = mkdtempSync(join(tmpdir(), 'fedsynth-train-bench-'));
  try {
    const config = DEFAULT_UNET_CONFIG;
    const model = new UNet(config, 1);
    // Parity needs every layer active: replace the zero-initialized ones too.
    let seed = 11;
    for (const v of model.params.values()) {
      const r = tf.randomUniform(v.shape, -0.1, 0.1, 'float32', seed++);
      v.assign(r);
      r.dispose();
    }
    const threads = Number(values.threads ?? availableParallelism());
    const plan = planTrainingRun({
      config,
      size,
      batch,
      backend: info.backend,
      threads,
      budgetBytes: values['memory-mb'] ? Number(values['memory-mb']) * 2 ** 20 : undefined,
    });
    // Parity on as many slices as one forward pass holds.
    const parityBatch = planSynthesis(config, size, batch, memoryBudget(info.backend));
    const x = tf.randomNormal(
      [parityBatch, size, size, config.inChannels],
      0,
      1,
      'float32',
      5,
    ) as tf.Tensor4D;
    const tArr = Array.from({ length: parityBatch }, (_, i) => (i * 997) % 1000);
    const t = tf.tensor1d(tArr, 'int32');
    const y = model.apply(x, t);
    writeFileSync(join(work, 'model.safetensors'), await encodeModel(model));
    writeFileSync(join(work, 'x.f32'), Buffer.from((await x.data()).buffer));
    writeFileSync(join(work, 'y.f32'), Buffer.from((await y.data()).buffer));
    writeFileSync(
      join(work, 'io.json'),
      JSON.stringify({ batch, parityBatch, size, t: tArr, torchSteps: steps }),
    );
    tf.dispose([x, t, y]);
    // Our training step: plain MSE and Adam, as the peer does.
    const trainer = await DataParallelTrainer.create(
      model,
      {
        prediction: 'epsilon',
        l1Weight: 0,
        emaDecay: 0,
        optimizer: {
          kind: 'adam',
          lr: 2e-4,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          clipNorm: 0,
        },
      },
      { backend: info.backend, threads, microBatch: plan.microBatch, checkpointing: plan.checkpointing },
    );
    process.stderr.write(
      `${threads} threads, ${plan.microBatch} of ${plan.batch} slices per pass${plan.checkpointing ? ', checkpointed' : ''}\n`,
    );
    const px = batch * size * size;
    const b = {
      count: batch,
      size,
      source: Float32Array.from({ length: px }, (_, i) => Math.sin(i)),
      target: Float32Array.from({ length: px }, (_, i) => Math.cos(i)),
    };
    await trainer.step(b);
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const s = process.hrtime.bigint();
      await trainer.step(b);
      times.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    times.sort((a, c) => a - c);
    const stepMs = times[times.length >> 1];
    await trainer.dispose();
    const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    model.dispose();
    const peer = resolve(__dirname, '..', '..', '..', '..', 'bench', 'diffusion', 'unet_peer.py');
    const torch = JSON.parse(execFileSync(PY, [peer, work], { encoding: 'utf8' }).trim().split('\n').pop()!);
    const gflopsPerStep = (3 * forwardFlops(config, size, batch)) / 1e9;
    console.log(
      JSON.stringify({
        backend: info.backend,
        size,
        batch,
        params: new UNet(config).paramCount(),
        threads,
        microBatch: plan.microBatch,
        checkpointing: plan.checkpointing,
        stepMs: Math.round(stepMs),
        peakRssMiB,
        gflopsPerStep: Number(gflopsPerStep.toFixed(2)),
        gflopsPerSec: Number((gflopsPerStep / (stepMs / 1000)).toFixed(2)),
        torchStepMs: Math.round(torch.torchStepMs),
        torchThreads: torch.torchThreads,
        ratio: Number((stepMs / torch.torchStepMs).toFixed(2)),
        parityMaxAbsDiff: torch.parityMaxAbsDiff,
      }),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
