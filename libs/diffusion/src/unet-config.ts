import type { TensorLayout } from './weights';

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
  conditionChannels = 1,
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
    // The noisy target image and the condition channels (source modalities, 2.5D neighbours).
    inChannels: 1 + conditionChannels,
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

export type ParamKind = 'conv' | 'linear' | 'norm-weight' | 'bias' | 'zero';

/** One parameter of the network: name, tfjs shape, how it is initialized. */
export interface ParamSpec {
  name: string;
  /** Shape in tfjs layout: conv [k, k, in, out], linear [in, out]. */
  shape: number[];
  kind: ParamKind;
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
export function torchShape(s: ParamSpec): number[] {
  if (s.shape.length === 4) return [s.shape[3], s.shape[2], s.shape[0], s.shape[1]];
  if (s.shape.length === 2) return [s.shape[1], s.shape[0]];
  return s.shape;
}

/**
 * The tensors (MONAI state-dict names, PyTorch shapes) a model of this configuration has, sorted by
 * name (the layout of saved weights and flat deltas): what a checkpoint of this architecture must
 * contain. Needs no tfjs, so the coordinator checks uploads with it.
 */
export function unetLayout(c: UNetConfig): TensorLayout[] {
  return parameterSpecs(c)
    .map((s) => ({ name: s.name, shape: torchShape(s) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
