import { createHash } from 'node:crypto';
import { CHUNK_ELEMENTS, defaultThreshold, SecAggClient, SecAggServer } from '@fedsynth/secure-agg';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_BYTES } from './chunked';
import { AGENT_TO_SERVER, MESSAGES, parseMessage, SERVER_TO_AGENT } from './schemas';
import { chunkToUint32, maskedTransferId, parseMaskedTransferId, uint32ToChunk } from './secagg-messages';

describe('secure-aggregation messages on the wire', () => {
  it('validate every message a real round produces, and carry masked chunks as bytes', () => {
    const keys = [1, 2, 3, 4].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i)));
    const config = {
      roundId: 'fed:1',
      modelHash: createHash('sha256').update('m').digest('hex'),
      participants: keys.map((k, i) => ({ index: i + 1, siteId: `s${i + 1}`, identityKey: k.publicKey })),
      threshold: defaultThreshold(4),
      graph: { kind: 'complete' as const },
      vectorLength: 5,
      quantization: { clip: 1, levels: 1024, maxWeight: 1 },
    };
    const server = new SecAggServer(config);
    const clients = keys.map(
      (k, i) => new SecAggClient({ config, selfIndex: i + 1, identitySecretKey: k.secretKey }),
    );
    for (const c of clients) server.receiveAdvertise(parseMessage('secagg.advertise', c.advertiseKeys()));
    for (const [i, r] of server.closeAdvertise())
      server.receiveShares(
        parseMessage('secagg.shares', clients[i - 1].shareKeys(parseMessage('secagg.roster', r))),
      );
    for (const [i, inbox] of server.closeShareKeys()) {
      for (const ch of clients[i - 1].maskedInput(parseMessage('secagg.inbox', inbox), {
        values: new Float32Array(5).fill(0.5),
        weight: 1,
      })) {
        const wire = new Uint8Array(uint32ToChunk(ch.data));
        const msg = parseMessage('secagg.masked-chunk', {
          transferId: maskedTransferId('fed:1', i),
          offset: ch.offset * 4,
          total: 24,
          data: wire,
        });
        server.receiveMaskedChunk(i, msg.offset / 4, chunkToUint32(msg.data));
      }
      server.completeMaskedInput(i);
    }
    for (const [i, l] of server.closeMaskedInput())
      server.receiveConsistency(
        parseMessage(
          'secagg.consistency',
          clients[i - 1].consistencyCheck(parseMessage('secagg.survivors', l)),
        ),
      );
    for (const [i, r] of server.closeConsistency())
      server.receiveUnmask(
        parseMessage('secagg.unmask', clients[i - 1].unmask(parseMessage('secagg.consistency-result', r))),
      );
    const result = server.finalize();
    for (const v of result.mean) expect(Math.abs(v - 0.5)).toBeLessThanOrEqual(result.errorBound);
    expect(() =>
      parseMessage('secagg.advertise', {
        roundId: 'x',
        sessionId: new Uint8Array(32),
        sender: 1,
        encryptionKey: new Uint8Array(31),
        maskingKey: new Uint8Array(32),
        signature: new Uint8Array(64),
      }),
    ).toThrow(/encryptionKey: expected exactly 32 bytes/);
    expect(() => chunkToUint32(new Uint8Array(6))).toThrow(/not whole 32-bit elements/);
  });

  it('reads masked chunks that arrive at any byte offset (Buffers sliced from a shared pool)', () => {
    const values = Uint32Array.of(1, 0xffffffff, 123456789, 0x80000000);
    const bytes = new Uint8Array(values.buffer);
    for (let offset = 0; offset < 4; offset++) {
      const pool = Buffer.alloc(64);
      pool.set(bytes, offset + 8);
      const chunk = pool.subarray(offset + 8, offset + 8 + bytes.length);
      expect(chunk.byteOffset % 4).toBe(offset);
      expect([...chunkToUint32(chunk)]).toEqual([...values]);
    }
  });

  it('names a masked upload by round and participant, and reads the name back', () => {
    expect(maskedTransferId('fed:1', 3)).toBe('fed:1/3');
    expect(parseMaskedTransferId(maskedTransferId('fed:1', 3))).toEqual({ roundId: 'fed:1', index: 3 });
    expect(parseMaskedTransferId(maskedTransferId('a/b', 12))).toEqual({ roundId: 'a/b', index: 12 });
    for (const other of ['a'.repeat(64), 'fed:1/', '/3', 'fed:1/03', 'fed:1/0', 'fed:1/x'])
      expect(parseMaskedTransferId(other)).toBeNull();
  });

  it('sends each chunk the SecAgg client produces as one transfer chunk', () => {
    expect(MAX_CHUNK_BYTES).toBe(CHUNK_ELEMENTS * 4);
    expect(MAX_CHUNK_BYTES).toBe(1024 * 1024);
  });

  it('gives every event of both directions a schema', () => {
    for (const n of [...SERVER_TO_AGENT, ...AGENT_TO_SERVER]) expect(MESSAGES[n]).toBeDefined();
  });
});
