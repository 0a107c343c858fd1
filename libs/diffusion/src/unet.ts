import { conv2d } from './conv';
import { seededUniform } from './rng';
import { tf } from './tf';
import { checkLayout, type NamedArray, type TensorLayout } from './weights';

/**
 * Configuration of the conditional U-Net, following MONAI's DiffusionModelUNet (2D): channels per
 * level, residual blocks per level, self-attention levels, GroupNorm groups and eps.
 */
export interface UNetConfig {
  /** Input channels: the noisy target plus the conditioning source image(s). */
  inChannels: number;
  outChannels: number;
  channels: number[];
  numResBlocks: number;
  attentionLevels: boolean[];
  numHeadChannels: number;
  normNumGroups: number;
  normEps: number;
}

/** The default model for 64x64 MRI -> CT: about 2.1M parameters. */
export const DEFAULT_UNET_CONFIG: UNetConfig = {
  inChannels: 2,
  outChannels: 1,
  channels: [32, 64, 80],
  numResBlocks: 2,
  // Self-attention in the middle block only (16x16 at 64x64 input): the costly full-resolution
  // levels stay convolutional, as CPU training needs.
  attentionLevels: [false, false, false],
  numHeadChannels: 16,
  normNumGroups: 16,
  normEps: 1e-6,
};

/**
 * The U-Net for given level widths: GroupNorm groups and attention head width are the largest of
 * 16, 8, 4, 2, 1 that divide the channels; attention stays in the middle block only.
 */
export function unetConfigFor(
  channels: number[],
  numResBlocks = DEFAULT_UNET_CONFIG.numResBlocks,
): UNetConfig {
  const groups = [16, 8, 4, 2, 1].find((g) => channels.every((c) => c % g === 0))!;
  const heads = [16, 8, 4, 2, 1].find((h) => channels[channels.length - 1] % h === 0)!;
  return {
    ...DEFAULT_UNET_CONFIG,
    channels: [...channels],
    attentionLevels: channels.map(() => false),
    normNumGroups: groups,
    numHeadChannels: heads,
    numResBlocks,
  };
}

/** Checks a configuration; errors name the field. */
export function validateUNetConfig(c: UNetConfig): void {
  const bad = (cond: boolean, msg: string) => {
    if (!cond) throw new RangeError(`unet config: ${msg}`);
  };
  bad(Number.isInteger(c.inChannels) && c.inChannels >= 1, 'inChannels must be a positive integer');
  bad(Number.isInteger(c.outChannels) && c.outChannels >= 1, 'outChannels must be a positive integer');
  bad(Array.isArray(c.channels) && c.channels.length >= 1, 'channels must list at least one level');
  bad(c.attentionLevels?.length === c.channels.length, 'attentionLevels must have one entry per level');
  bad(Number.isInteger(c.numResBlocks) && c.numResBlocks >= 1, 'numResBlocks must be a positive integer');
  for (const ch of c.channels)
    bad(
      ch % c.normNumGroups === 0,
      `every channel count must be a multiple of normNumGroups (${c.normNumGroups}), got ${ch}`,
    );
  c.channels.forEach((ch, i) => {
    if (c.attentionLevels[i])
      bad(
        ch % c.numHeadChannels === 0,
        `channels[${i}] = ${ch} must be a multiple of numHeadChannels (${c.numHeadChannels})`,
      );
  });
  bad(
    c.channels[c.channels.length - 1] % c.numHeadChannels === 0,
    'the last level feeds the attention mid block: its channels must be a multiple of numHeadChannels',
  );
}

type Kind = 'conv' | 'linear' | 'norm-weight' | 'bias' | 'zero';

interface ParamSpec {
  name: string;
  /** Shape in tfjs layout: conv [k, k, in, out], linear [in, out]. */
  shape: number[];
  kind: Kind;
  fanIn: number;
}

/** Parameters of the network, in MONAI's state-dict names, with tfjs shapes. */
export function parameterSpecs(c: UNetConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const conv = (name: string, k: number, cin: number, cout: number, zero = false) => {
    specs.push({
      name: `${name}.conv.weight`,
      shape: [k, k, cin, cout],
      kind: zero ? 'zero' : 'conv',
      fanIn: cin * k * k,
    });
    specs.push({
      name: `${name}.conv.bias`,
      shape: [cout],
      kind: zero ? 'zero' : 'bias',
      fanIn: cin * k * k,
    });
  };
  const linear = (name: string, cin: number, cout: number) => {
    specs.push({ name: `${name}.weight`, shape: [cin, cout], kind: 'linear', fanIn: cin });
    specs.push({ name: `${name}.bias`, shape: [cout], kind: 'bias', fanIn: cin });
  };
  const norm = (name: string, ch: number) => {
    specs.push({ name: `${name}.weight`, shape: [ch], kind: 'norm-weight', fanIn: 1 });
    specs.push({ name: `${name}.bias`, shape: [ch], kind: 'zero', fanIn: 1 });
  };
  const temb = c.channels[0] * 4;
  const resnet = (name: string, cin: number, cout: number) => {
    norm(`${name}.norm1`, cin);
    conv(`${name}.conv1`, 3, cin, cout);
    linear(`${name}.time_emb_proj`, temb, cout);
    norm(`${name}.norm2`, cout);
    conv(`${name}.conv2`, 3, cout, cout, true);
    if (cin !== cout) conv(`${name}.skip_connection`, 1, cin, cout);
  };
  const attention = (name: string, ch: number) => {
    norm(`${name}.norm`, ch);
    for (const p of ['to_q', 'to_k', 'to_v', 'out_proj']) linear(`${name}.attn.${p}`, ch, ch);
  };
  conv('conv_in', 3, c.inChannels, c.channels[0]);
  linear('time_embed.0', c.channels[0], temb);
  linear('time_embed.2', temb, temb);
  const L = c.channels.length;
  let out = c.channels[0];
  for (let i = 0; i < L; i++) {
    const cin = out;
    out = c.channels[i];
    for (let r = 0; r < c.numResBlocks; r++) {
      resnet(`down_blocks.${i}.resnets.${r}`, r === 0 ? cin : out, out);
      if (c.attentionLevels[i]) attention(`down_blocks.${i}.attentions.${r}`, out);
    }
    if (i < L - 1) conv(`down_blocks.${i}.downsampler.op`, 3, out, out);
  }
  const last = c.channels[L - 1];
  resnet('middle_block.resnet_1', last, last);
  attention('middle_block.attention', last);
  resnet('middle_block.resnet_2', last, last);
  const rev = [...c.channels].reverse();
  const revAttn = [...c.attentionLevels].reverse();
  out = rev[0];
  for (let u = 0; u < L; u++) {
    const prevOut = out;
    out = rev[u];
    const inCh = rev[Math.min(u + 1, L - 1)];
    const n = c.numResBlocks + 1;
    for (let r = 0; r < n; r++) {
      const skipCh = r === n - 1 ? inCh : out;
      const resIn = r === 0 ? prevOut : out;
      resnet(`up_blocks.${u}.resnets.${r}`, resIn + skipCh, out);
      if (revAttn[u]) attention(`up_blocks.${u}.attentions.${r}`, out);
    }
    if (u < L - 1) conv(`up_blocks.${u}.upsampler.postconv`, 3, out, out);
  }
  norm('out.0', c.channels[0]);
  conv('out.2', 3, c.channels[0], c.outChannels, true);
  return specs;
}

/** Shape of a parameter in PyTorch / MONAI layout (conv [out, in, k, k], linear [out, in]). */
function torchShape(s: ParamSpec): number[] {
  if (s.shape.length === 4) return [s.shape[3], s.shape[2], s.shape[0], s.shape[1]];
  if (s.shape.length === 2) return [s.shape[1], s.shape[0]];
  return s.shape;
}

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
      this.params.set(s.name, tf.variable(tf.tensor(data, s.shape), true));
    }
  }

  /** Number of trainable values. */
  paramCount(): number {
    return this.specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  }

  /** Names and PyTorch-layout shapes, sorted: the layout of saved weights and flat deltas. */
  layout(): TensorLayout[] {
    return this.specs
      .map((s) => ({ name: s.name, shape: torchShape(s) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`unet: no parameter ${name}`);
    return v;
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

  private norm(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const [b, h, w, c] = x.shape;
    const g = this.config.normNumGroups;
    const xg = x.reshape([b, h, w, g, c / g]);
    const { mean, variance } = tf.moments(xg, [1, 2, 4], true);
    const xn = xg
      .sub(mean)
      .mul(tf.rsqrt(variance.add(this.config.normEps)))
      .reshape([b, h, w, c]);
    return xn.mul(this.p(`${name}.weight`)).add(this.p(`${name}.bias`)) as tf.Tensor4D;
  }

  private resnet(name: string, x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    let h = silu(this.norm(`${name}.norm1`, x));
    h = this.conv(`${name}.conv1`, h);
    const t = this.linear(`${name}.time_emb_proj`, silu(emb));
    h = h.add(t.reshape([t.shape[0], 1, 1, t.shape[1]]));
    h = silu(this.norm(`${name}.norm2`, h));
    h = this.conv(`${name}.conv2`, h);
    const skip = this.params.has(`${name}.skip_connection.conv.weight`)
      ? this.conv(`${name}.skip_connection`, x)
      : x;
    return skip.add(h) as tf.Tensor4D;
  }

  private attention(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const [b, hh, ww, c] = x.shape;
    const heads = c / this.config.numHeadChannels;
    const d = this.config.numHeadChannels;
    const n = hh * ww;
    const h = this.norm(`${name}.norm`, x).reshape([b * n, c]) as tf.Tensor2D;
    const split = (t: tf.Tensor2D) => t.reshape([b, n, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
    const q = split(this.linear(`${name}.attn.to_q`, h));
    const k = split(this.linear(`${name}.attn.to_k`, h));
    const v = split(this.linear(`${name}.attn.to_v`, h));
    const att = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(d)));
    const o = tf
      .matMul(att, v)
      .transpose([0, 2, 1, 3])
      .reshape([b * n, c]) as tf.Tensor2D;
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
          h = this.resnet(`down_blocks.${i}.resnets.${r}`, h, emb);
          if (c.attentionLevels[i]) h = this.attention(`down_blocks.${i}.attentions.${r}`, h);
          skips.push(h);
        }
        if (i < L - 1) {
          h = this.conv(`down_blocks.${i}.downsampler.op`, h, 2);
          skips.push(h);
        }
      }
      h = this.resnet('middle_block.resnet_1', h, emb);
      h = this.attention('middle_block.attention', h);
      h = this.resnet('middle_block.resnet_2', h, emb);
      const revAttn = [...c.attentionLevels].reverse();
      for (let u = 0; u < L; u++) {
        for (let r = 0; r < c.numResBlocks + 1; r++) {
          const skip = skips.pop()!;
          h = tf.concat([h, skip], 3) as tf.Tensor4D;
          h = this.resnet(`up_blocks.${u}.resnets.${r}`, h, emb);
          if (revAttn[u]) h = this.attention(`up_blocks.${u}.attentions.${r}`, h);
        }
        if (u < L - 1) h = this.conv(`up_blocks.${u}.upsampler.postconv`, upsampleNearest2x(h));
      }
      h = silu(this.norm('out.0', h));
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
    checkLayout(arrays, this.layout(), source);
    const byName = new Map(arrays.map((a) => [a.name, a]));
    for (const s of this.specs) {
      const a = byName.get(s.name)!;
      for (let i = 0; i < a.data.length; i++) {
        if (!Number.isFinite(a.data[i]))
          throw new Error(`${source}: tensor "${s.name}" holds a non-finite value at ${i}`);
      }
      const v = tf.tidy(() => {
        const t = tf.tensor(a.data, a.shape);
        return s.shape.length === 4 ? t.transpose([2, 3, 1, 0]) : s.shape.length === 2 ? t.transpose() : t;
      });
      this.p(s.name).assign(v);
      v.dispose();
    }
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/** x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return x.mul(tf.sigmoid(x)) as T;
}

/**
 * Nearest-neighbour x2 upsampling with rank-4 reshapes and tiles (tfjs has tile gradients only up
 * to rank 5, and no resize gradient on wasm).
 */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const rows = x
    .reshape([b, h, 1, w * c])
    .tile([1, 1, 2, 1])
    .reshape([b * 2 * h, w, 1, c]);
  return rows.tile([1, 1, 2, 1]).reshape([b, 2 * h, 2 * w, c]) as tf.Tensor4D;
}
