import { alphaTerms, type PredictionType, predictionTarget, toX0AndEps } from './objective';
import { AdamOptimizer, DEFAULT_OPTIMIZER, type OptimizerConfig, sumScalars } from './optimizer';
import { seededUniform } from './rng';
import { makeSchedule, type NoiseSchedule, type ScheduleName } from './schedule';
import { tf } from './tf';
import type { UNet } from './unet';
import type { NamedArray } from './weights';

/** How the denoiser is trained. */
export interface TrainerConfig {
  schedule: ScheduleName;
  timesteps: number;
  prediction: PredictionType;
  optimizer: OptimizerConfig;
  /** Weight of an L1 term on the predicted x0 inside the body mask (0 = off). */
  l1Weight: number;
  /** EMA decay of the weights (0 = no EMA). */
  emaDecay: number;
  /** FedProx: mu / 2 ||w - w_global||^2 (0 = off). */
  fedProxMu: number;
  seed: number;
}

export const DEFAULT_TRAINER_CONFIG: TrainerConfig = {
  schedule: 'cosine',
  timesteps: 1000,
  prediction: 'v',
  optimizer: DEFAULT_OPTIMIZER,
  l1Weight: 0.1,
  emaDecay: 0.999,
  fedProxMu: 0,
  seed: 0,
};

/** A batch of slice pairs, each size*size, stacked: source and target in [-1, 1], mask 0/1. */
export interface Batch {
  count: number;
  size: number;
  /** Condition images, count x size x size x channels (channel last). */
  source: Float32Array;
  target: Float32Array;
  mask?: Uint8Array;
  /** Condition channels per slice (several source modalities, 2.5D neighbours); default 1. */
  channels?: number;
}

/** Result of one optimization step. */
export interface StepResult {
  loss: number;
  mse: number;
  gradNorm: number;
}

/**
 * Trains a UNet as a conditional denoiser: x_t = sqrt(ab) x0 + sqrt(1-ab) eps for a random
 * timestep, the network sees concat(x_t, source) and predicts eps, v or x0; loss = MSE to that
 * target, plus an optional masked L1 on the implied x0 and an optional FedProx proximal term.
 */
export class Trainer {
  readonly config: TrainerConfig;
  readonly schedule: NoiseSchedule;
  readonly optimizer: AdamOptimizer;
  private readonly ema = new Map<string, tf.Variable>();
  private readonly anchor = new Map<string, tf.Tensor>();

  constructor(
    readonly model: UNet,
    config: Partial<TrainerConfig> = {},
  ) {
    this.config = {
      ...DEFAULT_TRAINER_CONFIG,
      ...config,
      optimizer: { ...DEFAULT_OPTIMIZER, ...config.optimizer },
    };
    this.schedule = makeSchedule(this.config.schedule, this.config.timesteps);
    this.optimizer = new AdamOptimizer(this.config.optimizer);
    if (this.config.emaDecay > 0) {
      // tidy: each variable shares its clone's data, which would otherwise outlive the trainer.
      tf.tidy(() => {
        for (const [n, p] of model.params) this.ema.set(n, tf.variable(p.clone(), false));
      });
    }
  }

  /** Uses the current weights as the FedProx anchor (the global model of the round). */
  setProxAnchor(): void {
    this.clearAnchor();
    for (const [n, p] of this.model.params) this.anchor.set(n, tf.keep(p.clone()));
  }

  private clearAnchor(): void {
    for (const t of this.anchor.values()) t.dispose();
    this.anchor.clear();
  }

  /**
   * One optimization step on a batch, its gradients accumulated over micro-batches of at most
   * `microBatch` slices (default: the whole batch): the same update, with the activation memory of
   * one micro-batch. Leaves no tensors behind.
   */
  async step(batch: Batch, microBatch = batch.count): Promise<StepResult> {
    const part = await this.shardGrads(batch, this.optimizer.step, 0, batch.count, true, microBatch);
    return this.applyGrads(part.grads, part.loss, part.mse);
  }

  /**
   * Loss and gradients of rows [lo, hi) of a batch (see rangeGrads), computed `microBatch` rows at
   * a time and summed; the FedProx term, which does not depend on the data, is added once.
   */
  async shardGrads(
    batch: Batch,
    step: number,
    lo: number,
    hi: number,
    includeProx: boolean,
    microBatch = hi - lo,
  ): Promise<{ loss: number; mse: number; grads: Record<string, tf.Tensor> }> {
    if (!(Number.isInteger(microBatch) && microBatch >= 1))
      throw new RangeError(`micro-batch must be a positive integer, got ${microBatch}`);
    let acc: { loss: number; mse: number; grads: Record<string, tf.Tensor> } | null = null;
    for (let a = lo; a < hi; a += microBatch) {
      const part = await this.rangeGrads(
        batch,
        step,
        a,
        Math.min(hi, a + microBatch),
        includeProx && a === lo,
      );
      if (!acc) {
        acc = part;
        continue;
      }
      for (const [name, g] of Object.entries(part.grads)) {
        const prev = acc.grads[name];
        acc.grads[name] = prev ? tf.add(prev, g) : tf.clone(g);
        prev?.dispose();
        g.dispose();
      }
      acc.loss += part.loss;
      acc.mse += part.mse;
    }
    if (!acc) throw new RangeError(`shard [${lo}, ${hi}) is empty`);
    return acc;
  }

  /**
   * Loss and gradients of rows [lo, hi) of a batch at a given step, scaled so that the shards of one
   * batch add up to the whole batch's loss and gradients (data-parallel training sums them). The
   * randomness (timesteps, noise) is drawn for the whole batch from (seed, step) and sliced, so a
   * sharded step computes the same gradient as an unsharded one.
   */
  private async rangeGrads(
    batch: Batch,
    step: number,
    lo: number,
    hi: number,
    includeProx: boolean,
  ): Promise<{ loss: number; mse: number; grads: Record<string, tf.Tensor> }> {
    const { count: b, size } = batch;
    const px = size * size;
    const ch = batch.channels ?? 1;
    if (batch.source.length !== b * px * ch || batch.target.length !== b * px) {
      throw new RangeError(
        `batch of ${b} slices of ${size}x${size} needs ${b * px} values per image (${b * px * ch} for ${ch} condition channels)`,
      );
    }
    if (ch + 1 !== this.model.config.inChannels)
      throw new RangeError(
        `the model reads ${this.model.config.inChannels - 1} condition channel(s), the batch has ${ch}`,
      );
    if (!(lo >= 0 && hi <= b && hi > lo))
      throw new RangeError(`shard [${lo}, ${hi}) is outside the batch of ${b}`);
    // Randomness is a function of (seed, step), so a resumed run continues the same sequence.
    const rnd = seededUniform((Math.imul(this.config.seed, 0x9e3779b1) ^ (step + 1)) >>> 0);
    const tAll = Array.from({ length: b }, () => Math.floor(rnd() * this.schedule.T));
    const noiseSeed = Math.floor(rnd() * 2 ** 31);
    const n = hi - lo;
    const t = tAll.slice(lo, hi);
    const c = this.config;
    let maskTotal = b * px;
    if (batch.mask) {
      maskTotal = 0;
      for (let i = 0; i < batch.mask.length; i++) maskTotal += batch.mask[i];
    }
    let mseKept: tf.Scalar | null = null;
    const { value, grads } = tf.tidy(() => {
      const x0 = tf.tensor4d(batch.target.subarray(lo * px, hi * px), [n, size, size, 1]);
      const src = tf.tensor4d(batch.source.subarray(lo * px * ch, hi * px * ch), [n, size, size, ch]);
      const mask = batch.mask
        ? tf.tensor4d(Float32Array.from(batch.mask.subarray(lo * px, hi * px)), [n, size, size, 1])
        : null;
      const noiseAll = tf.randomNormal([b, size, size, 1], 0, 1, 'float32', noiseSeed) as tf.Tensor4D;
      const noise = n === b ? noiseAll : (noiseAll.slice([lo, 0, 0, 0], [n, size, size, 1]) as tf.Tensor4D);
      const { sa, sb } = alphaTerms(this.schedule, t);
      const xt = sa.mul(x0).add(sb.mul(noise)) as tf.Tensor4D;
      const input = tf.concat([xt, src], 3) as tf.Tensor4D;
      const tt = tf.tensor1d(t, 'int32');
      const target = predictionTarget(c.prediction, x0, noise, sa, sb);
      return tf.variableGrads(() => {
        const pred = this.model.apply(input, tt);
        const mse = pred.sub(target).square().mean() as tf.Scalar;
        let loss = mse.mul(n / b) as tf.Scalar;
        if (c.l1Weight > 0) {
          const { x0: x0hat } = toX0AndEps(c.prediction, pred, xt, sa, sb);
          const err = x0hat.clipByValue(-1, 1).sub(x0).abs();
          const l1 = (mask ? err.mul(mask).sum() : err.sum()).div(maskTotal + 1e-6);
          loss = loss.add(l1.mul(c.l1Weight)) as tf.Scalar;
        }
        if (includeProx && c.fedProxMu > 0 && this.anchor.size > 0) {
          const prox = sumScalars(
            [...this.anchor].map(([name, a]) => this.model.params.get(name)!.sub(a).square().sum()),
          );
          loss = loss.add(prox.mul(c.fedProxMu / 2)) as tf.Scalar;
        }
        mseKept = tf.keep(mse.mul(n / b) as tf.Scalar);
        return loss;
      }, [...this.model.params.values()]);
    });
    // variableGrads keys gradients by tfjs's variable names; map them back to parameter names.
    const named: Record<string, tf.Tensor> = {};
    for (const [name, v] of this.model.params) if (grads[v.name]) named[name] = grads[v.name];
    // Read asynchronously: the webgpu backend cannot read a GPU buffer synchronously in Node.
    const loss = (await value.data())[0];
    const kept = mseKept as tf.Scalar | null;
    const mse = kept ? (await kept.data())[0] : loss;
    tf.dispose([value, ...(mseKept ? [mseKept] : [])]);
    return { loss, mse, grads: named };
  }

  /** Applies summed shard gradients (disposing them): optimizer step, then EMA. */
  async applyGrads(grads: Record<string, tf.Tensor>, loss: number, mse: number): Promise<StepResult> {
    const gradNorm = await this.optimizer.apply(this.model.params, grads);
    tf.dispose(Object.values(grads));
    if (this.ema.size) {
      // EMA warm-up, min(decay, (1 + t) / (10 + t)): early averages do not drag the initial weights along.
      const t = this.optimizer.step;
      const d = Math.min(this.config.emaDecay, (1 + t) / (10 + t));
      tf.tidy(() => {
        for (const [n, e] of this.ema) e.assign(e.mul(d).add(this.model.params.get(n)!.mul(1 - d)));
      });
    }
    if (!Number.isFinite(loss))
      throw new Error(`training diverged: loss is ${loss} at step ${this.optimizer.step}`);
    return { loss, mse, gradNorm };
  }

  /** Optimizer moments and EMA weights, for resuming a run exactly where it stopped. */
  async exportState(): Promise<NamedArray[]> {
    const out: NamedArray[] = [];
    const st = await this.optimizer.exportState();
    for (const [kind, map] of [
      ['adam.m', st.m],
      ['adam.v', st.v],
    ] as const) {
      for (const [n, data] of map)
        out.push({ name: `${kind}/${n}`, dtype: 'F32', shape: [...this.model.params.get(n)!.shape], data });
    }
    for (const [n, e] of this.ema)
      out.push({
        name: `ema/${n}`,
        dtype: 'F32',
        shape: [...e.shape],
        data: (await e.data()) as Float32Array,
      });
    out.push({ name: 'step', dtype: 'F32', shape: [1], data: Float32Array.of(st.step) });
    return out;
  }

  /** Restores a state saved by exportState (after loading the model weights). */
  importState(arrays: NamedArray[]): void {
    const get = (prefix: string) =>
      new Map(
        arrays
          .filter((a) => a.name.startsWith(`${prefix}/`))
          .map((a) => [a.name.slice(prefix.length + 1), a.data]),
      );
    const step = arrays.find((a) => a.name === 'step')?.data[0] ?? 0;
    this.optimizer.importState(this.model.params, { step, m: get('adam.m'), v: get('adam.v') });
    for (const [n, data] of get('ema')) {
      const e = this.ema.get(n);
      if (e) {
        const t = tf.tensor(data, e.shape);
        e.assign(t);
        t.dispose();
      }
    }
  }

  /** Copies the EMA weights into the model (e.g. before evaluation or saving). */
  applyEma(): void {
    if (!this.ema.size) return;
    for (const [n, e] of this.ema) this.model.params.get(n)!.assign(e);
  }

  /** Restarts the EMA from the current model weights (after loading new global weights). */
  resetEma(): void {
    for (const [n, e] of this.ema) e.assign(this.model.params.get(n)!);
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const e of this.ema.values()) e.dispose();
    this.ema.clear();
    this.clearAnchor();
  }
}
