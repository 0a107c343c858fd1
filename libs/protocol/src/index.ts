/**
 * @fedsynth/protocol — every message between the coordinator and the site agents (zod schemas,
 * typed), the protocol version, and chunked, acknowledged, resumable, sha256-verified transfer of
 * large binaries.
 */
export { type Chunk, ChunkReceiver, ChunkSender, MAX_CHUNK_BYTES, sha256Hex, TransferError } from './chunked';
export {
  applyConfigPatch,
  DEFAULT_FEDERATION_CONFIG,
  type FederationConfig,
  FederationConfigError,
  type FederationConfigInput,
  federationConfig,
  federationConfigJsonSchema,
  MODALITIES,
  parseFederationConfig,
  type StrategyConfig,
} from './federation-config';
export {
  agentLimits,
  type ConnectionLimits,
  type MessageLimit,
  PRE_LOGIN_LIMITS,
} from './message-limits';
export * from './schemas';
export { chunkToUint32, SECAGG_MESSAGES } from './secagg-messages';
export {
  createGatewayParser,
  LimitedDecoder,
  MAX_ATTACHMENTS,
  MessageLimitError,
  socketParser,
} from './socket-parser';
