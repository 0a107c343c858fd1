import { tf } from './tf';

/** Adam / AdamW settings. */
export interface OptimizerConfig {
  kind: 'adam' | 'adamw';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW only). */
  weightDecay: number;
  /** Clip the global gradient norm to this value (0 = off). */
  clipNorm: number;
}

export const DEFAULT_OPTIMIZER: OptimizerConfig = {
  kind: 'adamw',
  lr: 2e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 1e-4,
  clipNorm: 1,
};

/**
 * The sum of many scalars, at most 7 per addN (8 storage buffers with the output): WebGPU allows a
 * shader 8 by default and tfjs-backend-webgpu's AddN binds one per input, so an addN of hundreds
 * fails validation there (and leaves garbage, not an exception).
 */
export function sumScalars(xs: tf.Tensor[]): tf.Tensor {
  let level = xs;
  while (level.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < level.length; i += 7) {
      const group = level.slice(i, i + 7);
      next.push(group.length === 1 ? group[0] : tf.addN(group));
    }
    level = next;
  }
  return level[0] ?? tf.scalar(0);
}

/** Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter) with global-norm gradient clipping. */
export class AdamOptimizer {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private t = 0;

  constructor(readonly config: OptimizerConfig) {}

  /** Applies one update; returns the global gradient norm before clipping. */
  async apply(params: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>): Promise<number> {
    const c = this.config;
    this.t += 1;
    const names = Object.keys(grads);
    const normT = tf.tidy(() => tf.sqrt(sumScalars(names.map((n) => grads[n].square().sum()))));
    // Read asynchronously: the webgpu backend cannot read a GPU buffer synchronously in Node.
    const norm = (await normT.data())[0];
    normT.dispose();
    const scale = c.clipNorm > 0 && norm > c.clipNorm ? c.clipNorm / norm : 1;
    const bc1 = 1 - c.beta1 ** this.t;
    const bc2 = 1 - c.beta2 ** this.t;
    tf.tidy(() => {
      for (const n of names) {
        const p = params.get(n)!;
        let m = this.m.get(n);
        let v = this.v.get(n);
        if (!m || !v) {
          m = tf.variable(tf.zerosLike(p), false);
          v = tf.variable(tf.zerosLike(p), false);
          this.m.set(n, m);
          this.v.set(n, v);
        }
        const g = scale === 1 ? grads[n] : grads[n].mul(scale);
        m.assign(m.mul(c.beta1).add(g.mul(1 - c.beta1)));
        v.assign(v.mul(c.beta2).add(g.square().mul(1 - c.beta2)));
        const update = m.div(bc1).div(v.div(bc2).sqrt().add(c.eps)).mul(c.lr);
        const decayed = c.kind === 'adamw' && c.weightDecay > 0 ? p.mul(1 - c.lr * c.weightDecay) : p;
        p.assign(decayed.sub(update));
      }
    });
    return norm;
  }

  /** Moments and step count, for resuming (tfjs layout, keyed by parameter name). */
  async exportState(): Promise<{ step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [n, t] of this.m) m.set(n, (await t.data()) as Float32Array);
    for (const [n, t] of this.v) v.set(n, (await t.data()) as Float32Array);
    return { step: this.t, m, v };
  }

  /** Restores moments saved by exportState for the given parameters. */
  importState(
    params: Map<string, tf.Variable>,
    state: { step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> },
  ): void {
    this.dispose();
    for (const [n, p] of params) {
      const m = state.m.get(n);
      const v = state.v.get(n);
      if (!m || !v) continue;
      // tidy: the variables share the initial tensors' data, which would otherwise live on.
      tf.tidy(() => {
        this.m.set(n, tf.variable(tf.tensor(m, p.shape), false));
        this.v.set(n, tf.variable(tf.tensor(v, p.shape), false));
      });
    }
    this.t = state.step;
  }

  /** Steps taken. */
  get step(): number {
    return this.t;
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
