import { readFile, rename, writeFile } from 'node:fs/promises';
import type { PredictionType } from './objective';
import type { ScheduleName } from './schedule';
import { UNet, type UNetConfig, unetConfigFor, validateUNetConfig } from './unet';
import { decodeSafetensors, encodeSafetensors, type NamedArray, WeightsError } from './weights';

/** What a saved model says about itself (safetensors metadata, all strings). */
export interface ModelMetadata {
  format: 'pt';
  'fedsynth.model': 'conditional-unet-2d';
  'fedsynth.unet': string; // JSON UNetConfig
  [key: string]: string;
}

/** Serializes a model (PyTorch-layout weights, MONAI names) with its config in the metadata. */
export async function encodeModel(model: UNet, extra: Record<string, string> = {}): Promise<Uint8Array> {
  const meta: ModelMetadata = {
    format: 'pt',
    'fedsynth.model': 'conditional-unet-2d',
    'fedsynth.unet': JSON.stringify(model.config),
    ...extra,
  };
  return encodeSafetensors(await model.toNamedArrays(), meta);
}

/** Saves a model atomically (write then rename), so a crash never leaves half a checkpoint. */
export async function saveModel(
  path: string,
  model: UNet,
  extra: Record<string, string> = {},
): Promise<void> {
  const bytes = await encodeModel(model, extra);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

/**
 * Builds a model from safetensors bytes written by encodeModel; errors name `source` and the
 * problem. The decoded arrays (PyTorch layout) come back too, for callers that need the weights
 * as numbers as well.
 */
export function decodeModel(
  bytes: Uint8Array,
  source = 'model',
): { model: UNet; metadata: Record<string, string>; arrays: NamedArray[] } {
  const { arrays, metadata } = decodeSafetensors(bytes, source);
  const raw = metadata['fedsynth.unet'];
  if (!raw)
    throw new WeightsError(`${source}: no fedsynth.unet configuration in the metadata; not a fedsynth model`);
  let config: UNetConfig;
  try {
    config = JSON.parse(raw);
    validateUNetConfig(config);
  } catch (err) {
    throw new WeightsError(`${source}: invalid model configuration (${(err as Error).message})`);
  }
  const model = new UNet(config);
  try {
    model.loadNamedArrays(arrays, source);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, metadata, arrays };
}

/** Loads a model saved by saveModel. */
export async function loadModel(path: string): Promise<{ model: UNet; metadata: Record<string, string> }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new WeightsError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  return decodeModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * A freshly initialized model as safetensors, with the metadata that synthesis needs (input size,
 * prediction type, noise schedule): the starting point of a federation.
 */
export async function createInitialModel(opts: {
  size: number;
  channels: number[];
  numResBlocks: number;
  prediction: PredictionType;
  schedule: ScheduleName;
  seed?: number;
  /** The task's text form (e.g. t1+t2-to-ct) and its condition channels; default MRI -> CT, 1. */
  task?: string;
  conditionChannels?: number;
}): Promise<Uint8Array> {
  const model = new UNet(
    unetConfigFor(opts.channels, opts.numResBlocks, opts.conditionChannels ?? 1),
    opts.seed ?? 0,
  );
  try {
    return await encodeModel(model, {
      size: String(opts.size),
      prediction: opts.prediction,
      schedule: opts.schedule,
      step: '0',
      ...(opts.task ? { task: opts.task } : {}),
    });
  } finally {
    model.dispose();
  }
}
