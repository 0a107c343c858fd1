import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type BackendChoice, defaultThreads } from './backend';
import { tf } from './tf';
import { type Batch, type StepResult, Trainer, type TrainerConfig } from './trainer';
import type { UNet } from './unet';

/** The compiled worker script (tests run from sources, so fall back to the build). */
function workerScript(): string {
  const here = join(__dirname, 'parallel-worker.js');
  if (existsSync(here)) return here;
  const built = join(__dirname, '..', 'dist', 'parallel-worker.js');
  if (existsSync(built)) return built;
  throw new Error('parallel-worker.js not found: run `npm run build` first');
}

interface Pending {
  resolve: (v: { loss: number; mse: number }) => void;
  reject: (e: Error) => void;
}

/**
 * Data-parallel training on one machine: the wasm backend runs on one thread in Node, so each
 * extra core gets a worker thread with a replica of the model. Every step the main thread shares
 * the weights, each thread computes the gradients of its shard of the batch, and the main thread
 * sums them and applies the optimizer: the same update as one thread would make, on all cores.
 */
export class DataParallelTrainer {
  private constructor(
    readonly trainer: Trainer,
    private readonly workers: Worker[],
    private readonly weights: Float32Array,
    private readonly grads: Float32Array[],
    private readonly pending: (Pending | null)[],
  ) {}

  /**
   * Starts `threads - 1` workers (default: one per available core) next to the main thread. Each
   * thread computes its share of a batch `microBatch` slices at a time (default: all at once),
   * with checkpointed activations when `checkpointing` (see planTraining).
   */
  static async create(
    model: UNet,
    config: Partial<TrainerConfig> = {},
    opts: { threads?: number; backend?: BackendChoice; microBatch?: number; checkpointing?: boolean } = {},
  ): Promise<DataParallelTrainer> {
    const trainer = new Trainer(model, config);
    model.checkpointing = opts.checkpointing ?? false;
    const threads = Math.max(1, opts.threads ?? defaultThreads());
    const total = model.paramCount();
    const wsab = new SharedArrayBuffer(total * 4);
    const workers: Worker[] = [];
    const grads: Float32Array[] = [];
    const pending: (Pending | null)[] = [];
    const backend =
      opts.backend ?? (tf.getBackend() === 'tensorflow' ? 'tensorflow' : (tf.getBackend() as BackendChoice));
    for (let i = 1; i < threads; i++) {
      const gsab = new SharedArrayBuffer(total * 4);
      const w = new Worker(workerScript());
      const idx = workers.length;
      workers.push(w);
      grads.push(new Float32Array(gsab));
      pending.push(null);
      const ready = new Promise<void>((resolve, reject) => {
        const onMsg = (m: { kind: string; message?: string }) => {
          if (m.kind === 'ready') {
            w.off('message', onMsg);
            resolve();
          } else if (m.kind === 'error') reject(new Error(`training worker failed to start: ${m.message}`));
        };
        w.on('message', onMsg);
        w.once('error', reject);
      });
      w.postMessage({
        kind: 'init',
        unet: model.config,
        trainer: config,
        backend,
        checkpointing: model.checkpointing,
        weights: wsab,
        grads: gsab,
      });
      await ready;
      w.on('message', (m: { kind: string; loss?: number; mse?: number; message?: string }) => {
        const p = pending[idx];
        pending[idx] = null;
        if (!p) return;
        if (m.kind === 'done') p.resolve({ loss: m.loss!, mse: m.mse! });
        else p.reject(new Error(`training worker ${idx + 1}: ${m.message}`));
      });
      w.on('error', (e) => {
        const p = pending[idx];
        pending[idx] = null;
        p?.reject(e);
      });
    }
    const parallel = new DataParallelTrainer(trainer, workers, new Float32Array(wsab), grads, pending);
    parallel.microBatch = opts.microBatch;
    return parallel;
  }

  /** Slices per pass in each thread (undefined: its whole share of the batch). */
  private microBatch: number | undefined;

  /** Threads taking part in each step, the main thread included. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /** One optimization step of the whole batch, its rows split across the threads. */
  async step(batch: Batch): Promise<StepResult> {
    const model = this.trainer.model;
    if (this.workers.length === 0 || batch.count < 2) return this.trainer.step(batch, this.microBatch);
    let o = 0;
    for (const s of model.specs) {
      const data = (await model.params.get(s.name)!.data()) as Float32Array;
      this.weights.set(data, o);
      o += data.length;
    }
    const parts = Math.min(this.threads, batch.count);
    const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * batch.count) / parts));
    const step = this.trainer.optimizer.step;
    const results = this.workers.slice(0, parts - 1).map(
      (w, i) =>
        new Promise<{ loss: number; mse: number }>((resolve, reject) => {
          this.pending[i] = { resolve, reject };
          w.postMessage({
            kind: 'step',
            batch,
            step,
            lo: bounds[i + 1],
            hi: bounds[i + 2],
            microBatch: this.microBatch,
          });
        }),
    );
    const mine = await this.trainer.shardGrads(batch, step, bounds[0], bounds[1], true, this.microBatch);
    const others = await Promise.all(results);
    let loss = mine.loss;
    let mse = mine.mse;
    for (const r of others) {
      loss += r.loss;
      mse += r.mse;
    }
    const summed: Record<string, tf.Tensor> = {};
    o = 0;
    for (const s of model.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const acc = new Float32Array(n);
      for (let w = 0; w < others.length; w++) {
        const g = this.grads[w];
        for (let i = 0; i < n; i++) acc[i] += g[o + i];
      }
      const own = mine.grads[s.name];
      summed[s.name] = tf.tidy(() => (own ? own.add(tf.tensor(acc, s.shape)) : tf.tensor(acc, s.shape)));
      o += n;
    }
    tf.dispose(Object.values(mine.grads));
    return this.trainer.applyGrads(summed, loss, mse);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.trainer.dispose();
  }
}
