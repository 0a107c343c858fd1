import { conv2d } from './conv';
import { groupNorm } from './group-norm';
import { seededUniform } from './rng';
import { tf } from './tf';
import {
  DEFAULT_UNET_CONFIG,
  type ParamSpec,
  parameterSpecs,
  torchShape,
  type UNetConfig,
  unetLayout,
  validateUNetConfig,
} from './unet-config';
import { checkLayout, type NamedArray, type TensorLayout } from './weights';

export {
  DEFAULT_UNET_CONFIG,
  parameterSpecs,
  type UNetConfig,
  unetConfigFor,
  unetLayout,
  validateUNetConfig,
} from './unet-config';

/** Sinusoidal timestep embedding [cos, sin] as in MONAI (max period 10000). */
export function timestepEmbedding(t: tf.Tensor1D, dim: number): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.exp(tf.range(0, half).mul(-Math.log(10000) / half));
    const args = t.toFloat().expandDims(1).mul(freqs.expandDims(0));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 === 1)
      emb = emb.pad([
        [0, 0],
        [0, 1],
      ]);
    return emb as tf.Tensor2D;
  });
}

/**
 * The conditional diffusion U-Net. Parameters are tf.Variables named as in MONAI's
 * DiffusionModelUNet state dict; `toNamedArrays` exports them in PyTorch layout, so a saved model
 * loads into MONAI with `load_state_dict`, and flat deltas are in the same canonical order everywhere.
 */
export class UNet {
  readonly config: UNetConfig;
  readonly specs: ParamSpec[];
  readonly params = new Map<string, tf.Variable>();
  /**
   * Recompute each residual and attention block's activations in the backward pass instead of
   * keeping them (activation checkpointing): training memory falls to the blocks' inputs plus one
   * block's internals, for about one more forward pass of compute. Gradients are unchanged.
   */
  checkpointing = false;
  /** Parameter tensors that stand in for the variables while a checkpointed block runs. */
  private bound: Map<string, tf.Tensor> | null = null;
  private readonly blockParams = new Map<string, string[]>();

  constructor(config: UNetConfig = DEFAULT_UNET_CONFIG, seed = 0) {
    validateUNetConfig(config);
    this.config = config;
    this.specs = parameterSpecs(config);
    const rnd = seededUniform(seed); // reproducible initialization on every backend
    for (const s of this.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (s.kind === 'norm-weight') data.fill(1);
      else if (s.kind !== 'zero') {
        // PyTorch's default: kaiming_uniform(a=sqrt(5)) for weights and U(-1/sqrt(fan_in), ..) for biases
        // both reduce to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        const bound = 1 / Math.sqrt(s.fanIn);
        for (let i = 0; i < n; i++) data[i] = (rnd() * 2 - 1) * bound;
      }
      // The variable shares the initial tensor's data; dispose the tensor or that data lives on.
      const init = tf.tensor(data, s.shape);
      this.params.set(s.name, tf.variable(init, true));
      init.dispose();
    }
  }

  /** Number of trainable values. */
  paramCount(): number {
    return this.specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  }

  /** Names and PyTorch-layout shapes, sorted: the layout of saved weights and flat deltas. */
  layout(): TensorLayout[] {
    return unetLayout(this.config);
  }

  private p(name: string): tf.Variable {
    const b = this.bound?.get(name);
    if (b) return b as tf.Variable;
    const v = this.params.get(name);
    if (!v) throw new Error(`unet: no parameter ${name}`);
    return v;
  }

  /** Names of the parameters of the block `name` (those under `name.`). */
  private paramsOf(name: string): string[] {
    let names = this.blockParams.get(name);
    if (!names) {
      names = this.specs.map((s) => s.name).filter((n) => n.startsWith(`${name}.`));
      this.blockParams.set(name, names);
    }
    return names;
  }

  /**
   * Runs block `name` (its output a function of `inputs` and its parameters), checkpointed when
   * `checkpointing` is on: the forward pass keeps only the block's inputs; the backward pass runs
   * the block again under its own gradient tape and returns the gradients of the inputs and of
   * every parameter of the block.
   */
  private block(name: string, inputs: tf.Tensor[], fn: (inputs: tf.Tensor[]) => tf.Tensor4D): tf.Tensor4D {
    // In a tidy of its own, so that without a gradient tape (synthesis, evaluation) only the
    // block's output outlives it.
    if (!this.checkpointing) return tf.tidy(() => fn(inputs));
    const names = this.paramsOf(name);
    const k = inputs.length;
    const run = (all: tf.Tensor[]): tf.Tensor4D => {
      const outer = this.bound;
      this.bound = new Map(names.map((n, i) => [n, all[k + i]]));
      try {
        return fn(all.slice(0, k));
      } finally {
        this.bound = outer;
      }
    };
    return checkpoint([...inputs, ...names.map((n) => this.p(n))], run) as tf.Tensor4D;
  }

  private conv(name: string, x: tf.Tensor4D, stride = 1): tf.Tensor4D {
    const w = this.p(`${name}.conv.weight`) as unknown as tf.Tensor4D;
    const k = w.shape[0];
    return conv2d(x, w, stride, (k - 1) >> 1).add(this.p(`${name}.conv.bias`)) as tf.Tensor4D;
  }

  private linear(name: string, x: tf.Tensor2D): tf.Tensor2D {
    return tf
      .matMul(x, this.p(`${name}.weight`) as unknown as tf.Tensor2D)
      .add(this.p(`${name}.bias`)) as tf.Tensor2D;
  }

  /** GroupNorm with its affine parameters, and SiLU after it when `withSilu` (one fused op). */
  private norm(name: string, x: tf.Tensor4D, withSilu = false): tf.Tensor4D {
    return groupNorm(
      x,
      this.p(`${name}.weight`),
      this.p(`${name}.bias`),
      this.config.normNumGroups,
      this.config.normEps,
      withSilu,
    );
  }

  private resnet(name: string, x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    let h = this.norm(`${name}.norm1`, x, true);
    h = this.conv(`${name}.conv1`, h);
    const t = this.linear(`${name}.time_emb_proj`, silu(emb));
    h = h.add(t.reshape([t.shape[0], 1, 1, t.shape[1]]));
    h = this.norm(`${name}.norm2`, h, true);
    h = this.conv(`${name}.conv2`, h);
    const skip = this.params.has(`${name}.skip_connection.conv.weight`)
      ? this.conv(`${name}.skip_connection`, x)
      : x;
    return skip.add(h) as tf.Tensor4D;
  }

  private resnetBlock(name: string, x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    return this.block(name, [x, emb], ([h, e]) => this.resnet(name, h as tf.Tensor4D, e as tf.Tensor2D));
  }

  private attentionBlock(name: string, x: tf.Tensor4D): tf.Tensor4D {
    return this.block(name, [x], ([h]) => this.attention(name, h as tf.Tensor4D));
  }

  /**
   * Multi-head self-attention, one head at a time: the [tokens x tokens] matrices of one head are
   * alive at once (in a tidy, or a checkpoint of their own when training checkpointed), which at
   * 256 px (4096 tokens in the middle block) is 64 MiB per copy and slice, where all five heads
   * of the default network at once were 320 MiB.
   */
  private attention(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const [b, hh, ww, c] = x.shape;
    const heads = c / this.config.numHeadChannels;
    const d = this.config.numHeadChannels;
    const n = hh * ww;
    const h = this.norm(`${name}.norm`, x).reshape([b * n, c]) as tf.Tensor2D;
    const split = (t: tf.Tensor2D) => t.reshape([b, n, c]) as tf.Tensor3D;
    // The 1/sqrt(d) scale on q (n x d) rather than on the scores (n x n).
    const q = split(this.linear(`${name}.attn.to_q`, h).mul(1 / Math.sqrt(d)));
    const k = split(this.linear(`${name}.attn.to_k`, h));
    const v = split(this.linear(`${name}.attn.to_v`, h));
    const head = ([qh, kh, vh]: tf.Tensor[]) =>
      tf.matMul(tf.softmax(tf.matMul(qh as tf.Tensor3D, kh as tf.Tensor3D, false, true)), vh as tf.Tensor3D);
    const outs: tf.Tensor[] = [];
    for (let j = 0; j < heads; j++) {
      const part = [q, k, v].map((t) => t.slice([0, 0, j * d], [b, n, d]));
      outs.push(this.checkpointing ? checkpoint(part, head) : tf.tidy(() => head(part)));
    }
    const o = (heads === 1 ? outs[0] : tf.concat(outs, 2)).reshape([b * n, c]) as tf.Tensor2D;
    return this.linear(`${name}.attn.out_proj`, o).reshape([b, hh, ww, c]).add(x) as tf.Tensor4D;
  }

  /**
   * Predicts from `x` [batch, H, W, inChannels] (noisy target first, then the source) at integer
   * timesteps `t` [batch]; returns [batch, H, W, outChannels]. H and W must be divisible by
   * 2^(levels-1).
   */
  apply(x: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D {
    const c = this.config;
    const L = c.channels.length;
    const [, H, W, C] = x.shape;
    if (C !== c.inChannels)
      throw new RangeError(`unet: input has ${C} channels, the model takes ${c.inChannels}`);
    const f = 2 ** (L - 1);
    if (H % f !== 0 || W % f !== 0)
      throw new RangeError(`unet: ${H}x${W} is not divisible by ${f} (${L} levels)`);
    return tf.tidy(() => {
      let emb = this.linear('time_embed.0', timestepEmbedding(t, c.channels[0]));
      emb = this.linear('time_embed.2', silu(emb));
      let h = this.conv('conv_in', x);
      const skips: tf.Tensor4D[] = [h];
      for (let i = 0; i < L; i++) {
        for (let r = 0; r < c.numResBlocks; r++) {
          h = this.resnetBlock(`down_blocks.${i}.resnets.${r}`, h, emb);
          if (c.attentionLevels[i]) h = this.attentionBlock(`down_blocks.${i}.attentions.${r}`, h);
          skips.push(h);
        }
        if (i < L - 1) {
          h = this.conv(`down_blocks.${i}.downsampler.op`, h, 2);
          skips.push(h);
        }
      }
      h = this.resnetBlock('middle_block.resnet_1', h, emb);
      h = this.attentionBlock('middle_block.attention', h);
      h = this.resnetBlock('middle_block.resnet_2', h, emb);
      const revAttn = [...c.attentionLevels].reverse();
      for (let u = 0; u < L; u++) {
        for (let r = 0; r < c.numResBlocks + 1; r++) {
          const skip = skips.pop()!;
          h = tf.concat([h, skip], 3) as tf.Tensor4D;
          h = this.resnetBlock(`up_blocks.${u}.resnets.${r}`, h, emb);
          if (revAttn[u]) h = this.attentionBlock(`up_blocks.${u}.attentions.${r}`, h);
        }
        if (u < L - 1) h = this.conv(`up_blocks.${u}.upsampler.postconv`, upsampleNearest2x(h));
      }
      h = this.norm('out.0', h, true);
      return this.conv('out.2', h);
    });
  }

  /** Parameters in PyTorch / MONAI layout and names (for safetensors and flat vectors). */
  async toNamedArrays(): Promise<NamedArray[]> {
    const out: NamedArray[] = [];
    for (const s of this.specs) {
      const v = this.p(s.name);
      const t = tf.tidy(() =>
        s.shape.length === 4 ? v.transpose([3, 2, 0, 1]) : s.shape.length === 2 ? v.transpose() : v.clone(),
      );
      out.push({ name: s.name, dtype: 'F32', shape: torchShape(s), data: (await t.data()) as Float32Array });
      t.dispose();
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Loads parameters from PyTorch-layout arrays; names and shapes must match exactly. */
  loadNamedArrays(arrays: readonly NamedArray[], source = 'weights'): void {
    for (const a of arrays)
      for (let i = 0; i < a.data.length; i++) {
        if (!Number.isFinite(a.data[i]))
          throw new Error(`${source}: tensor "${a.name}" holds a non-finite value at ${i}`);
      }
    const tensors = this.paramTensors(arrays, source);
    for (const [name, t] of tensors) this.p(name).assign(t);
    tf.dispose([...tensors.values()]);
  }

  /**
   * PyTorch-layout arrays as tensors in this model's parameter layout, by name (names and shapes
   * must match exactly); the caller disposes them.
   */
  paramTensors(arrays: readonly NamedArray[], source = 'weights'): Map<string, tf.Tensor> {
    checkLayout(arrays, this.layout(), source);
    const byName = new Map(arrays.map((a) => [a.name, a]));
    const out = new Map<string, tf.Tensor>();
    for (const s of this.specs) {
      const a = byName.get(s.name)!;
      out.set(
        s.name,
        tf.tidy(() => {
          const t = tf.tensor(a.data, a.shape);
          return s.shape.length === 4 ? t.transpose([2, 3, 1, 0]) : s.shape.length === 2 ? t.transpose() : t;
        }),
      );
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/**
 * `run(inputs)`, checkpointed: the forward pass keeps only the inputs; the backward pass runs it
 * again under its own gradient tape (see regrad) and returns the gradients of every input.
 */
function checkpoint(inputs: tf.Tensor[], run: (inputs: tf.Tensor[]) => tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const all = args as tf.Tensor[];
    save(all);
    return {
      value: tf.tidy(() => run(all)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => regrad(run, saved, dy),
    };
  });
  return op(...inputs);
}

/**
 * Gradients of `run(inputs)` with respect to every input, for upstream gradient `dy`: the block is
 * run again under a gradient tape of its own. The engine keeps one active tape, which a gradient
 * computation started from inside the outer backward pass would replace and then clear; the outer
 * tape is put back afterwards so the outer pass can still release what it saved.
 */
function regrad(run: (inputs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return tf.grads((...xs: tf.Tensor[]) => run(xs))(inputs, dy);
  } finally {
    state.activeTape = outer;
  }
}

/** x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return x.mul(tf.sigmoid(x)) as T;
}

/**
 * Nearest-neighbour x2 upsampling: each value broadcast over a 2x2 block (a multiply by ones
 * against a rank-6 view), with its gradient the sum over each block. About twice as fast on wasm
 * as tiling, whose gradients tfjs also lacks above rank 5; wasm has no resize gradient.
 */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x4 = args[0] as tf.Tensor4D;
    return {
      value: tf.tidy(() =>
        x4
          .reshape([b, h, 1, w, 1, c])
          .mul(tf.ones([1, 1, 2, 1, 2, 1]))
          .reshape([b, 2 * h, 2 * w, c]),
      ),
      gradFunc: (dy: tf.Tensor) => dy.reshape([b, h, 2, w, 2, c]).sum([2, 4]).reshape([b, h, w, c]),
    };
  });
  return op(x) as unknown as tf.Tensor4D;
}
