/**
 * `npm run gpu-check`: on every backend that loads here (tensorflow-gpu, webgpu, tensorflow, wasm; the cpu
 * backend is the reference), checks a forward pass and a training step's gradients of the default
 * U-Net against the cpu backend on the same weights and input, and times training steps at 64, 128
 * and 256 px with the memory planner's micro-batches. Prints progress on stderr and, last, one
 * JSON object: {machine, reference, backends: [{backend, loaded, reason?, device, nativeConvGradients,
 * forwardMaxAbsDiff, gradMaxRelDiff, steps: [{size, batch, microBatch, checkpointing, stepMs}]}]}.
 * Flags: --sizes 64,128,256  --batch 8  --backends tensorflow-gpu,webgpu,tensorflow,wasm
 */
import { availableParallelism, cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { type BackendName, selectBackend } from '../backend';
import { hasNativeConvGradients } from '../conv';
import { cudaInfo, describeCuda } from '../gpu-info';
import { memoryBudget, planTraining } from '../memory-plan';
import { tf } from '../tf';
import { Trainer } from '../trainer';
import { DEFAULT_UNET_CONFIG, UNet } from '../unet';
import type { NamedArray } from '../weights';

const log = (s: string) => process.stderr.write(`${s}\n`);

/** The default U-Net with every parameter seeded at random (zero-initialized layers included). */
async function seededWeights(): Promise<NamedArray[]> {
  const model = new UNet(DEFAULT_UNET_CONFIG, 3);
  let seed = 21;
  for (const v of model.params.values()) {
    const r = tf.randomUniform(v.shape, -0.1, 0.1, 'float32', seed++);
    v.assign(r);
    r.dispose();
  }
  const out = await model.toNamedArrays();
  model.dispose();
  return out;
}

function input(
  slices: number,
  size: number,
): { x: Float32Array; t: number[]; batch: ReturnType<typeof batchOf> } {
  const n = slices * size * size;
  return {
    x: Float32Array.from({ length: n * 2 }, (_, i) => Math.sin(i * 0.013) * 1.5),
    t: Array.from({ length: slices }, (_, i) => (i * 397 + 11) % 1000),
    batch: batchOf(slices, size),
  };
}

function batchOf(count: number, size: number) {
  const n = count * size * size;
  return {
    count,
    size,
    source: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7)),
    target: Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3)),
  };
}

/** Forward output and one step's gradients (by name) on the current backend. */
async function run(
  weights: NamedArray[],
  fwd: ReturnType<typeof input>,
  grad: ReturnType<typeof input>,
  size: number,
) {
  const model = new UNet(DEFAULT_UNET_CONFIG);
  model.loadNamedArrays(weights);
  const slices = fwd.t.length;
  const yT = tf.tidy(() =>
    model.apply(tf.tensor4d(fwd.x, [slices, size, size, 2]), tf.tensor1d(fwd.t, 'int32')),
  );
  const y = (await yT.data()) as Float32Array;
  yT.dispose();
  const trainer = new Trainer(model, { seed: 5, emaDecay: 0 });
  const part = await trainer.shardGrads(grad.batch, 0, 0, grad.batch.count, false);
  const grads = new Map<string, Float32Array>();
  for (const [n, g] of Object.entries(part.grads)) grads.set(n, (await g.data()) as Float32Array);
  tf.dispose(Object.values(part.grads));
  trainer.dispose();
  model.dispose();
  return { y, grads };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Largest difference of any parameter's gradient, relative to that gradient's largest entry, or to
 * 1e-4 of the largest gradient anywhere when that is larger: some gradients are zero in exact
 * arithmetic (attention's key bias, which softmax ignores) and hold only rounding noise.
 */
function gradRelDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let global = 0;
  for (const g of b.values()) for (const v of g) global = Math.max(global, Math.abs(v));
  let worst = 0;
  for (const [name, g] of b) {
    const h = a.get(name);
    if (!h) return Number.POSITIVE_INFINITY;
    let scale = 0;
    for (const v of g) scale = Math.max(scale, Math.abs(v));
    worst = Math.max(worst, maxAbsDiff(h, g) / Math.max(scale, 1e-4 * global));
  }
  return worst;
}

async function stepMs(size: number, batch: number, backend: BackendName) {
  const plan = planTraining(DEFAULT_UNET_CONFIG, size, batch, memoryBudgetFor(backend));
  const model = new UNet(DEFAULT_UNET_CONFIG, 1);
  model.checkpointing = plan.checkpointing;
  const trainer = new Trainer(model, { emaDecay: 0 });
  const b = batchOf(batch, size);
  await trainer.step(b, plan.microBatch); // warm-up: kernels compiled, memory grown
  const t0 = performance.now();
  await trainer.step(b, plan.microBatch);
  const ms = performance.now() - t0;
  trainer.dispose();
  model.dispose();
  return {
    size,
    batch,
    microBatch: plan.microBatch,
    checkpointing: plan.checkpointing,
    stepMs: Math.round(ms),
  };
}

// One thread in this process: the whole machine's memory (or the GPU's) for this check.
const memoryBudgetFor = (backend: BackendName) => memoryBudget(backend, { threads: 1 });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '64,128,256' },
      batch: { type: 'string', default: '8' },
      backends: { type: 'string', default: 'tensorflow-gpu,webgpu,tensorflow,wasm' },
    },
  });
  const sizes = String(values.sizes).split(',').map(Number);
  const batch = Number(values.batch);
  const machine = {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    cuda: describeCuda(cudaInfo()),
  };
  log(`machine: ${JSON.stringify(machine)}`);
  await selectBackend('cpu');
  const weights = await seededWeights();
  const fwd = input(2, 64);
  const grad = input(2, 32);
  log('reference: forward (2 x 64 px) and gradients (2 x 32 px) on the cpu backend ...');
  const ref = await run(weights, fwd, grad, 64);
  const results: unknown[] = [];
  for (const name of String(values.backends).split(',') as BackendName[]) {
    let device = '';
    try {
      device = (await selectBackend(name)).device;
    } catch (err) {
      results.push({ backend: name, loaded: false, reason: (err as Error).message });
      log(`${name}: not loaded (${(err as Error).message.split(';')[0]})`);
      continue;
    }
    log(`${name}: ${device}; parity ...`);
    const got = await run(weights, fwd, grad, 64);
    const steps = [];
    for (const size of sizes) {
      log(`${name}: one training step at ${size} px, batch ${batch} ...`);
      try {
        steps.push(await stepMs(size, batch, name));
      } catch (err) {
        steps.push({ size, batch, error: (err as Error).message });
      }
    }
    results.push({
      backend: name,
      loaded: true,
      device,
      nativeConvGradients: hasNativeConvGradients(),
      forwardMaxAbsDiff: maxAbsDiff(got.y, ref.y),
      gradMaxRelDiff: gradRelDiff(got.grads, ref.grads),
      steps,
    });
  }
  process.stdout.write(
    `${JSON.stringify({ machine, reference: 'cpu backend, default U-Net, seeded weights', backends: results })}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
