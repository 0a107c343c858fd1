import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeSafetensors } from '@fedsynth/diffusion/weights';
import type { Repository } from 'typeorm';
import { CheckpointEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

/**
 * Content-addressed checkpoint blobs: `<dir>/<sha256[0:2]>/<sha256>.safetensors`, written atomically
 * (temp file, then rename) and recorded in the checkpoints table. The same bytes always have the
 * same address, so storing twice is harmless.
 */
export class CheckpointStore {
  constructor(
    private readonly dir: string,
    private readonly repo: Repository<CheckpointEntity>,
  ) {}

  private path(sha: string): string {
    return join(this.dir, sha.slice(0, 2), `${sha}.safetensors`);
  }

  /** Stores safetensors bytes after checking they parse; returns their sha256. */
  async put(bytes: Uint8Array, meta: { federationId?: string; roundNumber?: number } = {}): Promise<string> {
    try {
      decodeSafetensors(bytes, 'checkpoint');
    } catch (err) {
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, (err as Error).message);
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    const p = this.path(sha);
    await mkdir(join(this.dir, sha.slice(0, 2)), { recursive: true });
    const exists = await stat(p).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const tmp = `${p}.tmp-${process.pid}`;
      await writeFile(tmp, bytes);
      await rename(tmp, p);
    }
    await this.repo.upsert(
      {
        sha256: sha,
        size: String(bytes.length),
        federationId: meta.federationId ?? null,
        roundNumber: meta.roundNumber ?? null,
      },
      ['sha256'],
    );
    return sha;
  }

  /** The bytes of a stored checkpoint, verified against their address. */
  async get(sha: string): Promise<Uint8Array> {
    if (!/^[0-9a-f]{64}$/.test(sha))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'a checkpoint is addressed by 64 lower-case hex characters (sha256)',
      );
    if (!(await this.repo.existsBy({ sha256: sha })))
      throw new CoordinatorError(ErrorCode.NOT_FOUND, `no checkpoint ${sha}`);
    const bytes = new Uint8Array(await readFile(this.path(sha)));
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== sha) throw new Error(`checkpoint ${sha} is corrupt on disk (its bytes hash to ${got})`);
    return bytes;
  }
}
