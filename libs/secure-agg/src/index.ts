/**
 * @fedsynth/secure-agg — dropout-tolerant secure aggregation (Bonawitz et al. 2017, active-adversary
 * form, with the SecAgg+ neighbour graph of Bell et al. 2020 as an option). Transport-free: the
 * coordinator and the site agent move these messages over whatever channel they use.
 */
export { type ClientStage, SecAggClient, SHARE_CIPHERTEXT_BYTES, SHARE_PLAINTEXT_BYTES } from './client';
export { SecAggError, SecAggErrorCode } from './errors';
export { neighbourhoods } from './graph';
export { deriveKey, hkdfSha256, KDF_LABELS } from './kdf';
export { ed25519Sign, ed25519Verify } from './keys';
export type {
  AdvertiseKeysMessage,
  AggregateResult,
  ConsistencyResultMessage,
  ConsistencySignatureMessage,
  EncryptedShare,
  KeyRosterMessage,
  MaskedChunk,
  MaskedInputStream,
  RevealedShare,
  ShareInboxMessage,
  ShareKeysMessage,
  SurvivorListMessage,
  UnmaskMessage,
} from './messages';
export {
  defaultThreshold,
  encodeRoundConfig,
  groupSize,
  type NeighbourGraph,
  type Participant,
  type QuantizationParams,
  type RoundConfig,
  type SecAggStage,
  STAGES,
  sessionId,
  type ThreatModel,
  validateRoundConfig,
} from './params';
export { CHUNK_ELEMENTS, Prg, prgExpand } from './prg';
export { dequantizeSum, meanErrorBound } from './quantize';
export { SecAggServer, type ServerStage } from './server';
export { combineShares, FIELD_PRIME, SHARE_VALUE_BYTES, type Share, splitSecret } from './shamir';
export { ed25519PublicKeyProblem, x25519PublicKeyProblem } from './weak-keys';
