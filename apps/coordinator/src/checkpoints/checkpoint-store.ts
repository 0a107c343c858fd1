import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { decodeSafetensors } from '@fedsynth/diffusion/weights';
import type { Repository } from 'typeorm';
import { CheckpointEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

/** Where a checkpoint came from, recorded beside it. */
export interface CheckpointMeta {
  federationId?: string;
  roundNumber?: number;
}

function diskError(err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new CoordinatorError(
      ErrorCode.INSUFFICIENT_STORAGE,
      "the coordinator's checkpoint disk is full; nothing was stored",
    );
  return err as Error;
}

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

  /** Where the blobs live (strategy states are kept beside them). */
  get directory(): string {
    return this.dir;
  }

  private path(sha: string): string {
    return join(this.dir, sha.slice(0, 2), `${sha}.safetensors`);
  }

  /** Moves a verified temporary file to its address and records it. */
  private async commit(tmp: string, sha: string, size: number, meta: CheckpointMeta): Promise<void> {
    const p = this.path(sha);
    await mkdir(join(this.dir, sha.slice(0, 2)), { recursive: true });
    const exists = await stat(p).then(
      () => true,
      () => false,
    );
    if (exists) await rm(tmp, { force: true });
    else await rename(tmp, p);
    await this.repo.upsert(
      {
        sha256: sha,
        size: String(size),
        federationId: meta.federationId ?? null,
        roundNumber: meta.roundNumber ?? null,
      },
      ['sha256'],
    );
  }

  private tmpPath(): string {
    return join(this.dir, 'incoming', `${randomBytes(12).toString('hex')}.tmp`);
  }

  /** Stores safetensors bytes after checking they parse; returns their sha256. */
  async put(bytes: Uint8Array, meta: CheckpointMeta = {}): Promise<string> {
    try {
      decodeSafetensors(bytes, 'checkpoint');
    } catch (err) {
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, (err as Error).message);
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    const tmp = this.tmpPath();
    try {
      await mkdir(join(this.dir, 'incoming'), { recursive: true });
      await writeFile(tmp, bytes);
      await this.commit(tmp, sha, bytes.length, meta);
    } catch (err) {
      await rm(tmp, { force: true });
      throw diskError(err);
    }
    return sha;
  }

  /**
   * Stores a checkpoint that arrives as a stream (an upload), hashing and counting it as it is
   * written to a temporary file: more than `maxBytes` stops the transfer with PAYLOAD_TOO_LARGE and
   * nothing is kept. Once complete, `validate` sees the bytes; only if it accepts them are they
   * stored under their address.
   */
  async putStream(
    input: Readable,
    opts: { maxBytes: number; validate: (bytes: Uint8Array) => void; meta?: CheckpointMeta },
  ): Promise<{ sha256: string; size: number }> {
    const tmp = this.tmpPath();
    await mkdir(join(this.dir, 'incoming'), { recursive: true });
    const hash = createHash('sha256');
    let size = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const out = createWriteStream(tmp, { mode: 0o600 });
        const fail = (err: Error) => {
          input.unpipe(out);
          out.destroy();
          reject(err);
        };
        input.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > opts.maxBytes) {
            input.pause();
            return fail(
              new CoordinatorError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                `the model is larger than the ${opts.maxBytes} bytes a model upload may have`,
              ),
            );
          }
          hash.update(chunk);
        });
        input.once('close', () => {
          if (!input.readableEnded)
            fail(new CoordinatorError(ErrorCode.INVALID_INPUT, 'the upload was cut off before its end'));
        });
        input.once('error', fail);
        out.once('error', (err) => fail(diskError(err)));
        out.once('finish', resolve);
        input.pipe(out);
      });
      if (size === 0) throw new CoordinatorError(ErrorCode.INVALID_INPUT, 'the upload is empty');
      const bytes = new Uint8Array(await readFile(tmp));
      opts.validate(bytes);
      const sha = hash.digest('hex');
      await this.commit(tmp, sha, size, opts.meta ?? {});
      return { sha256: sha, size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw diskError(err);
    }
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
