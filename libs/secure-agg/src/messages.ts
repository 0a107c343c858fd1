import { concatBytes, equalBytes, lp, u32be, utf8 } from './bytes';
import { ensure, SecAggErrorCode } from './errors';

/**
 * Messages of one round. All carry the round id and session id; `sender` and `recipient` are
 * participant indices. Binary fields are Uint8Array / Uint32Array so a transport can carry them
 * without re-encoding.
 */
interface Envelope {
  roundId: string;
  sessionId: Uint8Array;
}

/** Stage 0, client -> server: two fresh X25519 public keys, signed with the site's identity key. */
export interface AdvertiseKeysMessage extends Envelope {
  sender: number;
  encryptionKey: Uint8Array; // 32 B, for share encryption
  maskingKey: Uint8Array; // 32 B, for pairwise masks
  signature: Uint8Array; // 64 B Ed25519
}

/** Stage 0, server -> client: the signed adverts of the recipient's neighbourhood (itself included). */
export interface KeyRosterMessage extends Envelope {
  recipient: number;
  adverts: AdvertiseKeysMessage[];
}

/** One encrypted share pair for one recipient: nonce (24 B) || secretbox ciphertext. */
export interface EncryptedShare {
  recipient: number;
  ciphertext: Uint8Array;
}

/** Stage 1, client -> server: the sender's shares, one ciphertext per neighbour. */
export interface ShareKeysMessage extends Envelope {
  sender: number;
  shares: EncryptedShare[];
}

/** Stage 1, server -> client: the ciphertexts addressed to the recipient. */
export interface ShareInboxMessage extends Envelope {
  recipient: number;
  shares: { sender: number; ciphertext: Uint8Array }[];
}

/** Stage 2, client -> server, streamed: a slice of the masked vector starting at `offset`. */
export interface MaskedChunk {
  offset: number;
  data: Uint32Array;
}

/** The masked vector as a stream of chunks (values, then the weight element last). */
export interface MaskedInputStream extends Iterable<MaskedChunk> {
  /** Elements in the whole masked vector: vectorLength + 1. */
  readonly length: number;
  readonly chunkCount: number;
}

/** Stage 3, server -> client: the sites whose masked vectors arrived complete. */
export interface SurvivorListMessage extends Envelope {
  recipient: number;
  survivors: number[];
}

/** Stage 3, client -> server: the recipient's signature over the survivor list. */
export interface ConsistencySignatureMessage extends Envelope {
  sender: number;
  signature: Uint8Array;
}

/** Stage 4, server -> client: the survivor list, the dropouts, and everyone's signatures over the list. */
export interface ConsistencyResultMessage extends Envelope {
  recipient: number;
  survivors: number[];
  /** Sites that shared keys but sent no complete masked vector: their mask keys are to be revealed. */
  dropouts: number[];
  signatures: { sender: number; signature: Uint8Array }[];
}

/** A share of `owner`'s secret held by the sender (66-byte field element; x is the sender's index). */
export interface RevealedShare {
  owner: number;
  share: Uint8Array;
}

/** Stage 4, client -> server: self-mask shares of survivors, mask-key shares of dropouts. */
export interface UnmaskMessage extends Envelope {
  sender: number;
  selfMaskShares: RevealedShare[];
  maskKeyShares: RevealedShare[];
}

/** What the server learns: the sum, and the weighted mean it decodes to. */
export interface AggregateResult {
  /** Sum mod 2^32 of the encoded vectors of the survivors (values, then the weight element). */
  sum: Uint32Array;
  /** Total weight of the survivors, in the units of `maxWeight`. */
  weightSum: number;
  /** Dequantized weighted mean of the survivors' clipped values. */
  mean: Float32Array;
  /** Bound on |mean - exact weighted mean| per element (see quantize.ts). */
  errorBound: number;
  survivors: number[];
  dropouts: { index: number; stage: import('./params').SecAggStage }[];
}

/** Bytes signed when advertising keys. */
export function advertisePayload(
  session: Uint8Array,
  sender: number,
  enc: Uint8Array,
  mask: Uint8Array,
): Uint8Array {
  return concatBytes(lp(utf8('fedsynth/secagg/v1/advertise')), session, u32be(sender), enc, mask);
}

/** Bytes signed in the consistency check: the session and the sorted survivor list. */
export function consistencyPayload(session: Uint8Array, survivors: readonly number[]): Uint8Array {
  const sorted = [...survivors].sort((a, b) => a - b);
  return concatBytes(
    lp(utf8('fedsynth/secagg/v1/consistency')),
    session,
    u32be(sorted.length),
    ...sorted.map(u32be),
  );
}

/** Refuses a message of another round or session; `what` names the message in the error. */
export function checkEnvelope(
  msg: { roundId: string; sessionId: Uint8Array },
  roundId: string,
  session: Uint8Array,
  what: string,
): void {
  ensure(
    msg && msg.roundId === roundId,
    SecAggErrorCode.WRONG_ROUND,
    () => `${what}: round ${msg?.roundId} is not ${roundId}`,
  );
  ensure(
    msg.sessionId instanceof Uint8Array && equalBytes(msg.sessionId, session),
    SecAggErrorCode.WRONG_ROUND,
    `${what}: session id does not match this round's configuration`,
  );
}
