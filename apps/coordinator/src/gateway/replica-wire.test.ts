import notepack from 'notepack.io';
import { describe, expect, it } from 'vitest';
import { asBuffers, binaryFromJson, binaryToJson } from './agent-gateway';

/** What crosses between coordinator replicas must keep every byte of every binary field. */
describe('binary fields between replicas', () => {
  const ab = new ArrayBuffer(16);
  new Uint8Array(ab).set(Array.from({ length: 16 }, (_, i) => i + 1));
  const message = {
    roundId: 'r1',
    sessionId: new Uint8Array(ab, 3, 5), // a view at an offset, as socket payloads often are
    nested: [{ share: Buffer.from([9, 8, 7]), n: 4 }],
    words: new Uint32Array([0xdeadbeef]),
  };
  const bytes = (v: unknown) => [
    ...new Uint8Array((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength),
  ];

  it('survive the JSON of server-side emits', () => {
    const back = binaryFromJson(JSON.parse(JSON.stringify(binaryToJson(message)))) as Record<string, never>;
    expect(bytes(back.sessionId)).toEqual([4, 5, 6, 7, 8]);
    expect(bytes((back.nested as { share: Uint8Array }[])[0].share)).toEqual([9, 8, 7]);
    expect((back.nested as { n: number }[])[0].n).toBe(4);
    expect(bytes(back.words)).toEqual(bytes(message.words));
    expect(back.roundId).toBe('r1');
  });

  it('survive the msgpack of room broadcasts once views are Buffers (raw wider arrays do not)', () => {
    const raw = notepack.decode(notepack.encode(message)) as Record<string, never>;
    expect(bytes(raw.words)).not.toEqual(bytes(message.words)); // one byte per element: 0xef
    const fixed = notepack.decode(notepack.encode(asBuffers(message))) as Record<string, never>;
    expect(bytes(fixed.sessionId)).toEqual([4, 5, 6, 7, 8]);
    expect(bytes(fixed.words)).toEqual(bytes(message.words));
  });
});
