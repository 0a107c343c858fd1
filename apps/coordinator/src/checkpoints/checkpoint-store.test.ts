import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors } from '@fedsynth/diffusion/weights';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../db/database';
import { CheckpointEntity } from '../db/entities';
import { freshEmbedded } from '../db/testing';
import { CheckpointStore } from './checkpoint-store';

let db: Database;
beforeAll(async () => {
  db = await freshEmbedded();
}, 60_000);
afterAll(async () => {
  await db?.close();
});

describe('CheckpointStore', () => {
  it('stores by content address, idempotently, verifies on read, and refuses non-safetensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-ckpt-'));
    const store = new CheckpointStore(dir, db.dataSource.getRepository(CheckpointEntity));
    const bytes = encodeSafetensors([
      { name: 'w', dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) },
    ]);
    const sha = await store.put(bytes, { roundNumber: 0 });
    expect(await store.put(bytes)).toBe(sha);
    expect(Buffer.from(await store.get(sha)).equals(Buffer.from(bytes))).toBe(true);
    expect(await db.dataSource.getRepository(CheckpointEntity).countBy({ sha256: sha })).toBe(1);
    await expect(store.put(new Uint8Array([1, 2, 3]))).rejects.toThrow(/too short/);
    await expect(store.get('0'.repeat(64))).rejects.toThrow(/no checkpoint/);
    writeFileSync(join(dir, sha.slice(0, 2), `${sha}.safetensors`), Buffer.from(bytes).reverse());
    await expect(store.get(sha)).rejects.toThrow(/corrupt on disk/);
  });
});
