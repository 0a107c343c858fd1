import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type BackendChoice, defaultThreads } from './backend';
import { encodeModel } from './checkpoint';
import type { PredictionType } from './objective';
import { combineSamples, ddimSample, modelDenoiser, type SampleOptions, type SampleResult } from './sampler';
import { makeSchedule, type ScheduleName } from './schedule';
import { tf } from './tf';
import type { UNet } from './unet';

/** The compiled worker script (tests run from sources, so fall back to the build). */
function workerScript(): string {
  const here = join(__dirname, 'synthesis-worker.js');
  if (existsSync(here)) return here;
  const built = join(__dirname, '..', 'dist', 'synthesis-worker.js');
  if (existsSync(built)) return built;
  throw new Error('synthesis-worker.js not found: run `npm run build` first');
}

/** A DDIM run's settings as plain data, which crosses to worker threads. */
export interface RunSettings {
  source: Float32Array;
  count: number;
  size: number;
  schedule: ScheduleName;
  timesteps: number;
  prediction: PredictionType;
  steps: number;
  eta: number;
  samples: number;
  seed: number;
  batchSize: number;
  /** Condition channels per slice (the model's input channels less the noisy image). */
  channels: number;
}

/** ddimSample's options for a run's settings. */
export function sampleOptions(r: RunSettings): SampleOptions & { batchSize: number } {
  return {
    schedule: makeSchedule(r.schedule, r.timesteps),
    prediction: r.prediction,
    steps: r.steps,
    eta: r.eta,
    samples: r.samples,
    seed: r.seed,
    batchSize: r.batchSize,
    channels: r.channels,
  };
}

/** Whether worker `worker` of `workers` runs the (sample, batch) pair: dealt out round-robin. */
export function ownsPair(
  sample: number,
  batch: number,
  batches: number,
  worker: number,
  workers: number,
): boolean {
  return (sample * batches + batch) % workers === worker;
}

/** What a DDIM run needs from its caller. */
export interface ParallelSampleOptions {
  schedule: ScheduleName;
  timesteps?: number;
  prediction: PredictionType;
  steps: number;
  eta?: number;
  samples?: number;
  seed?: number;
  batchSize: number;
  onStep?: (done: number, total: number) => void;
}

/**
 * DDIM sampling on every core: the wasm backend runs on one thread in Node, so with `threads` > 1
 * each thread is a worker with a replica of the model, the (sample, batch) pairs of a run are
 * dealt out round-robin, and the calling thread stays free (progress, sockets) while they run.
 * Each slice draws its noise from its own seed, so the result equals one thread's. With one
 * thread it samples on the calling thread.
 */
export class ParallelSampler {
  private constructor(
    private readonly model: UNet,
    private readonly workers: Worker[],
  ) {}

  /** Starts `threads` workers when `threads` > 1 (default: defaultThreads of the backend). */
  static async create(
    model: UNet,
    opts: { threads?: number; backend?: BackendChoice } = {},
  ): Promise<ParallelSampler> {
    const threads = Math.max(1, opts.threads ?? defaultThreads());
    const workers: Worker[] = [];
    if (threads > 1) {
      const bytes = await encodeModel(model);
      const backend = opts.backend ?? (tf.getBackend() as BackendChoice);
      try {
        for (let i = 0; i < threads; i++) {
          const w = new Worker(workerScript());
          workers.push(w);
          await new Promise<void>((resolve, reject) => {
            const onMsg = (m: { kind: string; message?: string }) => {
              w.off('message', onMsg);
              if (m.kind === 'ready') resolve();
              else reject(new Error(`synthesis worker failed to start: ${m.message}`));
            };
            w.on('message', onMsg);
            w.once('error', reject);
            w.postMessage({ kind: 'init', model: bytes, backend });
          });
        }
      } catch (err) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw err;
      }
    }
    return new ParallelSampler(model, workers);
  }

  get threads(): number {
    return Math.max(1, this.workers.length);
  }

  /** DDIM sampling of `count` slices (see ddimSample), shared between the threads. */
  async sample(
    source: Float32Array,
    count: number,
    size: number,
    o: ParallelSampleOptions,
  ): Promise<SampleResult> {
    const k = o.samples ?? 1;
    const batches = Math.ceil(count / o.batchSize);
    const total = k * batches * o.steps;
    let done = 0;
    const tick = () => o.onStep?.(++done, total);
    const run: RunSettings = {
      source,
      count,
      size,
      schedule: o.schedule,
      timesteps: o.timesteps ?? 1000,
      prediction: o.prediction,
      steps: o.steps,
      eta: o.eta ?? 0,
      samples: k,
      seed: o.seed ?? 0,
      batchSize: o.batchSize,
      channels: this.model.config.inChannels - 1,
    };
    if (this.workers.length === 0)
      return ddimSample(modelDenoiser(this.model), source, count, size, {
        ...sampleOptions(run),
        onStep: tick,
      });
    const W = this.workers.length;
    const theirs = await Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<Float32Array[]>((resolve, reject) => {
            const onMsg = (m: { kind: string; samples?: Float32Array[]; message?: string }) => {
              if (m.kind === 'step') return tick();
              w.off('message', onMsg);
              if (m.kind === 'done') resolve(m.samples!);
              else reject(new Error(`synthesis worker ${i + 1}: ${m.message}`));
            };
            w.on('message', onMsg);
            w.postMessage({ kind: 'run', ...run, worker: i, workers: W });
          }),
      ),
    );
    // Each worker's images hold its own pairs; put them together.
    const merged = Array.from({ length: k }, () => new Float32Array(count * size * size));
    const px = size * size;
    theirs.forEach((outs, i) => {
      for (let s = 0; s < k; s++)
        for (let j = 0; j < batches; j++) {
          if (!ownsPair(s, j, batches, i, W)) continue;
          const lo = j * o.batchSize * px;
          const hi = Math.min(count, (j + 1) * o.batchSize) * px;
          merged[s].set(outs[s].subarray(lo, hi), lo);
        }
    });
    return combineSamples(merged);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
