import { SHARE_CIPHERTEXT_BYTES, SHARE_VALUE_BYTES } from '@fedsynth/secure-agg';
import { z } from 'zod';

/**
 * The secure-aggregation stage messages of libs/secure-agg as they travel: the same fields, with
 * sizes checked before the state machines see them. Masked-vector chunks travel as `blob.chunk`-like
 * `secagg.masked-chunk` messages (Uint32 little-endian bytes).
 */
const bytes = (len: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === len, {
    message: `expected exactly ${len} bytes of binary data`,
  });
const index = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
const envelope = { roundId: z.string().min(1).max(200), sessionId: bytes(32) };
const indexList = z.array(index).max(100_000);

export const advertiseKeys = z.object({
  ...envelope,
  sender: index,
  encryptionKey: bytes(32),
  maskingKey: bytes(32),
  signature: bytes(64),
});
export const keyRoster = z.object({
  ...envelope,
  recipient: index,
  adverts: z.array(advertiseKeys).max(100_000),
});
export const shareKeys = z.object({
  ...envelope,
  sender: index,
  shares: z.array(z.object({ recipient: index, ciphertext: bytes(SHARE_CIPHERTEXT_BYTES) })).max(100_000),
});
export const shareInbox = z.object({
  ...envelope,
  recipient: index,
  shares: z.array(z.object({ sender: index, ciphertext: bytes(SHARE_CIPHERTEXT_BYTES) })).max(100_000),
});
export const survivorList = z.object({ ...envelope, recipient: index, survivors: indexList });
export const consistencySignature = z.object({ ...envelope, sender: index, signature: bytes(64) });
export const consistencyResult = z.object({
  ...envelope,
  recipient: index,
  survivors: indexList,
  dropouts: indexList,
  signatures: z.array(z.object({ sender: index, signature: bytes(64) })).max(100_000),
});
const revealed = z.array(z.object({ owner: index, share: bytes(SHARE_VALUE_BYTES) })).max(100_000);
export const unmask = z.object({
  ...envelope,
  sender: index,
  selfMaskShares: revealed,
  maskKeyShares: revealed,
});

/** Secure-aggregation messages by event name. */
export const SECAGG_MESSAGES = {
  'secagg.advertise': advertiseKeys,
  'secagg.roster': keyRoster,
  'secagg.shares': shareKeys,
  'secagg.inbox': shareInbox,
  'secagg.survivors': survivorList,
  'secagg.consistency': consistencySignature,
  'secagg.consistency-result': consistencyResult,
  'secagg.unmask': unmask,
} as const;

/** A masked-vector chunk's bytes as the Uint32 elements libs/secure-agg adds (little-endian). */
export function chunkToUint32(data: Uint8Array): Uint32Array {
  if (data.byteLength % 4 !== 0)
    throw new RangeError(`masked chunk of ${data.byteLength} bytes is not whole 32-bit elements`);
  // A Buffer's slice() is a view at the same offset, so copy through the Uint8Array constructor:
  // socket payloads are often slices of a shared pool at any byte offset.
  const aligned = data.byteOffset % 4 === 0 ? data : new Uint8Array(data);
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
}
