import { type UNetConfig, unetConfigFor, unetLayout } from '@fedsynth/diffusion/unet-config';
import { checkLayout, decodeSafetensors } from '@fedsynth/diffusion/weights';
import { type FederationConfig, taskChannels } from '@fedsynth/protocol';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

/** The model settings of a federation that fix its architecture. */
export interface ModelArchitecture {
  size?: unknown;
  channels?: unknown;
  numResBlocks?: unknown;
  /** Condition channels of the federation's task (default 1: one source, 2D). */
  conditionChannels?: number;
}

const invalid = (message: string) => new CoordinatorError(ErrorCode.INVALID_INPUT, message);

/** A federation's architecture: its model settings and its task's condition channels. */
export function architectureOf(config: FederationConfig): ModelArchitecture {
  return { ...config.model, conditionChannels: taskChannels(config.task) };
}

/** The U-Net configuration a federation's model settings describe. */
export function expectedUNetConfig(arch: ModelArchitecture): UNetConfig {
  const channels = arch.channels ?? [32, 64, 80];
  if (!Array.isArray(channels) || !channels.every((c) => Number.isInteger(c) && c > 0))
    throw invalid(`the federation's modelConfig.channels is not a list of positive integers`);
  return unetConfigFor(channels as number[], Number(arch.numResBlocks ?? 2), arch.conditionChannels ?? 1);
}

/**
 * Checks that safetensors bytes are a model the federation can train: a fedsynth conditional
 * U-Net whose configuration is the one the federation's model settings give (same levels, blocks,
 * groups), with exactly that architecture's tensors and shapes, every value finite, and the input
 * size of the federation. The error names the first difference.
 */
export function validateFederationModel(bytes: Uint8Array, arch: ModelArchitecture, source = 'model'): void {
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes, source);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  const { arrays, metadata } = decoded;
  if (metadata['fedsynth.model'] !== 'conditional-unet-2d')
    throw invalid(`${source} is not a fedsynth conditional U-Net (metadata fedsynth.model is missing)`);
  const expected = expectedUNetConfig(arch);
  let given: Record<string, unknown>;
  try {
    given = JSON.parse(metadata['fedsynth.unet'] ?? '');
  } catch {
    throw invalid(`${source}: its metadata fedsynth.unet is not a JSON U-Net configuration`);
  }
  for (const [key, want] of Object.entries(expected)) {
    if (JSON.stringify(given[key]) !== JSON.stringify(want))
      throw invalid(
        `${source} has ${key} ${JSON.stringify(given[key])}; the federation's model has ${JSON.stringify(want)}`,
      );
  }
  try {
    checkLayout(arrays, unetLayout(expected), source);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  for (const a of arrays) {
    const bad = a.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw invalid(`${source}: tensor "${a.name}" holds a non-finite value at element ${bad}`);
  }
  if (arch.size !== undefined && metadata.size !== undefined && Number(metadata.size) !== Number(arch.size))
    throw invalid(
      `${source} was made for ${metadata.size} px inputs; the federation trains at ${arch.size} px`,
    );
}
