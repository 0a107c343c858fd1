import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '@fedsynth/diffusion/weights';
import { type Strategy, StrategyError, type StrategyKind, type StrategyState } from './strategy';

const FORMAT = 'fedsynth-strategy-state';
const VERSION = '1';
const KINDS: readonly StrategyKind[] = ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'scaffold'];

/** A strategy state as safetensors: its vectors as 1-d F32 tensors, kind and steps as metadata. */
export function encodeStrategyState(state: StrategyState): Uint8Array {
  return encodeSafetensors(
    state.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: [t.data.length], data: t.data })),
    { format: FORMAT, version: VERSION, kind: state.kind, steps: String(state.steps) },
  );
}

/** Reads a state written by encodeStrategyState; errors name `source` and what was wrong. */
export function decodeStrategyState(bytes: Uint8Array, source = 'strategy state'): StrategyState {
  const bad = (why: string) => new StrategyError('INVALID_STATE', `${source}: ${why}`);
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes, source);
  } catch (err) {
    throw new StrategyError('INVALID_STATE', (err as Error).message);
  }
  const { arrays, metadata } = decoded;
  if (metadata.format !== FORMAT) throw bad(`metadata format is ${metadata.format}; expected ${FORMAT}`);
  if (metadata.version !== VERSION)
    throw bad(`version ${metadata.version} is not supported (expected ${VERSION})`);
  if (!KINDS.includes(metadata.kind as StrategyKind)) throw bad(`unknown strategy kind ${metadata.kind}`);
  if (!/^(0|[1-9]\d{0,14})$/.test(metadata.steps ?? '')) throw bad(`steps ${metadata.steps} is not a count`);
  for (const a of arrays)
    if (a.shape.length !== 1) throw bad(`tensor ${a.name} has shape [${a.shape}]; expected 1-d`);
  return {
    kind: metadata.kind as StrategyKind,
    steps: Number(metadata.steps),
    tensors: arrays.map((a) => ({ name: a.name, data: a.data })),
  };
}

function checkSha(sha: string): void {
  if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))
    throw new StrategyError('INVALID_INPUT', `checkpoint sha256 must be 64 lowercase hex digits, got ${sha}`);
}

/**
 * Strategy states beside the checkpoints they led to: `<dir>/<sha[0:2]>/<sha>.strategy.safetensors`
 * for checkpoint `sha`, written atomically (temp file in `<dir>/incoming`, then rename), so a crash
 * never leaves half a state where a restart would read it.
 */
export class StrategyStateStore {
  constructor(private readonly dir: string) {}

  /** Where the state of checkpoint `sha` lives. */
  pathOf(sha: string): string {
    checkSha(sha);
    return join(this.dir, sha.slice(0, 2), `${sha}.strategy.safetensors`);
  }

  /** Writes the state of `strategy` (or a state) as the state of checkpoint `sha`, replacing any. */
  async save(sha: string, strategy: Pick<Strategy, 'saveState'> | StrategyState): Promise<void> {
    const path = this.pathOf(sha);
    const state = 'saveState' in strategy ? strategy.saveState() : strategy;
    const bytes = encodeStrategyState(state);
    const tmp = join(this.dir, 'incoming', `${randomBytes(12).toString('hex')}.strategy.tmp`);
    await mkdir(join(this.dir, 'incoming'), { recursive: true });
    await mkdir(join(this.dir, sha.slice(0, 2)), { recursive: true });
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** The state saved for checkpoint `sha`, or null when none was saved. */
  async load(sha: string): Promise<StrategyState | null> {
    const path = this.pathOf(sha);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return decodeStrategyState(bytes, path);
  }
}
