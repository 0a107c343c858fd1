import {
  type AdvertiseKeysMessage,
  type ConsistencyResultMessage,
  type ConsistencySignatureMessage,
  type KeyRosterMessage,
  SHARE_CIPHERTEXT_BYTES,
  SHARE_VALUE_BYTES,
  type ShareInboxMessage,
  type ShareKeysMessage,
  type SurvivorListMessage,
  type UnmaskMessage,
} from '@fedsynth/secure-agg';
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

/** Whether A and B are the same type: each assignable to the other, with the same field names. */
type Same<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [keyof A] extends [keyof B]
      ? [keyof B] extends [keyof A]
        ? true
        : false
      : false
    : false
  : false;

/**
 * Ties a schema to the libs/secure-agg interface it carries: what it parses to is `T` (so a parsed
 * message goes to SecAggClient/SecAggServer as it is), and the build fails where the two differ in a
 * field, one more or one less, or its type.
 */
const carrying =
  <T>() =>
  <S extends z.ZodType<T>>(
    schema: S,
    ..._sameType: Same<z.output<S>, T> extends true ? [] : [differs: { schema: z.output<S>; type: T }]
  ): z.ZodType<T> =>
    schema;

export const advertiseKeys = carrying<AdvertiseKeysMessage>()(
  z.object({
    ...envelope,
    sender: index,
    encryptionKey: bytes(32),
    maskingKey: bytes(32),
    signature: bytes(64),
  }),
);
export const keyRoster = carrying<KeyRosterMessage>()(
  z.object({
    ...envelope,
    recipient: index,
    adverts: z.array(advertiseKeys).max(100_000),
  }),
);
export const shareKeys = carrying<ShareKeysMessage>()(
  z.object({
    ...envelope,
    sender: index,
    shares: z.array(z.object({ recipient: index, ciphertext: bytes(SHARE_CIPHERTEXT_BYTES) })).max(100_000),
  }),
);
export const shareInbox = carrying<ShareInboxMessage>()(
  z.object({
    ...envelope,
    recipient: index,
    shares: z.array(z.object({ sender: index, ciphertext: bytes(SHARE_CIPHERTEXT_BYTES) })).max(100_000),
  }),
);
export const survivorList = carrying<SurvivorListMessage>()(
  z.object({ ...envelope, recipient: index, survivors: indexList }),
);
export const consistencySignature = carrying<ConsistencySignatureMessage>()(
  z.object({ ...envelope, sender: index, signature: bytes(64) }),
);
export const consistencyResult = carrying<ConsistencyResultMessage>()(
  z.object({
    ...envelope,
    recipient: index,
    survivors: indexList,
    dropouts: indexList,
    signatures: z.array(z.object({ sender: index, signature: bytes(64) })).max(100_000),
  }),
);
const revealed = z.array(z.object({ owner: index, share: bytes(SHARE_VALUE_BYTES) })).max(100_000);
export const unmask = carrying<UnmaskMessage>()(
  z.object({
    ...envelope,
    sender: index,
    selfMaskShares: revealed,
    maskKeyShares: revealed,
  }),
);

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

/**
 * The transfer id of participant `index`'s masked upload in round `roundId`: every chunk of the
 * upload carries it, and the coordinator refuses chunks with any other.
 */
export function maskedTransferId(roundId: string, index: number): string {
  return `${roundId}/${index}`;
}

/** The round and participant of a masked upload's transfer id, or null for any other id (a model's sha256). */
export function parseMaskedTransferId(transferId: string): { roundId: string; index: number } | null {
  const cut = transferId.lastIndexOf('/');
  if (cut <= 0) return null;
  const index = Number(transferId.slice(cut + 1));
  if (!(Number.isInteger(index) && index >= 1 && String(index) === transferId.slice(cut + 1))) return null;
  return { roundId: transferId.slice(0, cut), index };
}

/** A masked-vector chunk's bytes as the Uint32 elements libs/secure-agg adds (little-endian). */
export function chunkToUint32(data: Uint8Array): Uint32Array {
  if (data.byteLength % 4 !== 0)
    throw new RangeError(`masked chunk of ${data.byteLength} bytes is not whole 32-bit elements`);
  // A Buffer's slice() is a view at the same offset, so copy through the Uint8Array constructor:
  // socket payloads are often slices of a shared pool at any byte offset.
  const aligned = data.byteOffset % 4 === 0 ? data : new Uint8Array(data);
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
}

/** The bytes of a masked-vector chunk as they travel (a view, not a copy; little-endian hosts). */
export function uint32ToChunk(data: Uint32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
