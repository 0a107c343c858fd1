import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkReceiver, ChunkSender, MAX_CHUNK_BYTES, sha256Hex, TransferError } from './chunked';

describe('chunked transfer', () => {
  it('delivers any payload exactly, across interruptions and resumes, with duplicates ignored', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 5000 }),
        fc.integer({ min: 1, max: 700 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 4 }),
        (payload, chunkSize, cuts) => {
          const sender = new ChunkSender('t1', payload, chunkSize);
          const receiver = new ChunkReceiver('t1', payload.length, sender.sha256);
          let cutIdx = 0;
          let guard = 0;
          while (!receiver.complete || payload.length === 0) {
            if (guard++ > 10_000) throw new Error('no progress');
            let sent = 0;
            let last: { offset: number; data: Uint8Array } | null = null;
            for (const chunk of sender.chunks()) {
              // A connection drop after `cuts[cutIdx]` chunks: the rest is lost.
              if (cutIdx < cuts.length && sent === cuts[cutIdx]) break;
              const acked = receiver.accept(chunk);
              if (last)
                expect(receiver.accept({ ...chunk, offset: last.offset, data: last.data })).toBe(acked); // duplicate
              sender.ack(acked);
              last = chunk;
              sent++;
            }
            cutIdx++;
            // Reconnect: the receiver tells the sender where to continue.
            sender.resumeFrom(receiver.offset);
            if (payload.length === 0) break;
          }
          expect(Buffer.from(receiver.result()).equals(Buffer.from(payload))).toBe(true);
        },
      ),
      { seed: 17, numRuns: 200 },
    );
  });

  it('refuses gaps, oversize chunks, wrong totals and a payload whose hash differs', () => {
    const payload = new Uint8Array(100).map((_, i) => i);
    const s = new ChunkSender('x', payload, 40);
    const chunks = [...s.chunks()];
    const r = new ChunkReceiver('x', 100, s.sha256);
    expect(() => r.accept(chunks[1])).toThrow(/chunk at offset 40, expected 0/);
    r.accept(chunks[0]);
    expect(() => r.accept({ ...chunks[1], total: 120 })).toThrow(TransferError);
    expect(() => r.accept({ ...chunks[1], data: new Uint8Array(MAX_CHUNK_BYTES + 1) })).toThrow(
      /larger than/,
    );
    expect(() => r.result()).toThrow(/40 of 100 bytes received/);
    const bad = new ChunkReceiver('x', 100, sha256Hex(new Uint8Array(100)));
    for (const c of chunks) bad.accept(c);
    expect(() => bad.result()).toThrow(expect.objectContaining({ code: 'HASH_MISMATCH' }));
    expect(() => new ChunkReceiver('y', 10 ** 9, s.sha256, 1000)).toThrow(/exceed the limit of 1000/);
    expect(() => new ChunkSender('z', payload, MAX_CHUNK_BYTES + 1)).toThrow(/chunk size/);
  });
});
