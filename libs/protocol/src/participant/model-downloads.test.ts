import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../chunked';
import type { Message } from '../schemas';
import { ModelDownloads } from './model-downloads';

const MODEL = Uint8Array.from({ length: 250 }, (_, i) => (i * 13) & 255);
const SHA = sha256Hex(MODEL);
const chunk = (offset: number, end: number, bytes = MODEL) => ({
  transferId: SHA,
  offset,
  total: bytes.length,
  data: bytes.slice(offset, end),
});

describe('ModelDownloads', () => {
  it('shares one download between two fetches of a model and resumes it from the bytes received', async () => {
    const requests: Message<'blob.request'>[] = [];
    const sut = new ModelDownloads((m) => requests.push(m), 1000);
    const a = sut.fetch(SHA, MODEL.length);
    const b = sut.fetch(SHA, MODEL.length);
    expect(requests).toEqual([{ sha256: SHA, offset: 0 }]);
    expect(sut.receive(chunk(0, 100))).toBe(true);
    sut.resume();
    expect(requests.at(-1)).toEqual({ sha256: SHA, offset: 100 });
    sut.receive(chunk(0, 100)); // a retransmission is ignored
    sut.receive(chunk(100, 250));
    expect(await a).toEqual(MODEL);
    expect(await b).toEqual(MODEL);
    expect(sut.pending).toEqual([]);
    expect(sut.receive(chunk(0, 100))).toBe(false);
  });

  it('ends a download on a gap, a hash mismatch, a refusal, or a size above the limit', async () => {
    const sut = new ModelDownloads(() => undefined, 1000);
    const gap = sut.fetch(SHA, MODEL.length);
    sut.receive(chunk(100, 200));
    await expect(gap).rejects.toMatchObject({ code: 'OUT_OF_ORDER' });
    const tampered = new Uint8Array(MODEL);
    tampered[7] ^= 1;
    const bad = sut.fetch(SHA, MODEL.length);
    sut.receive(chunk(0, 250, tampered));
    await expect(bad).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
    const refused = sut.fetch(SHA, MODEL.length);
    expect(sut.refuse(SHA, 'NOT_FOUND: no such model')).toBe(true);
    await expect(refused).rejects.toThrow(`the coordinator refused model ${SHA}: NOT_FOUND: no such model`);
    expect(sut.refuse(SHA, 'again')).toBe(false);
    await expect(sut.fetch(SHA, 5000)).rejects.toMatchObject({ code: 'TOO_LARGE' });
  });
});
