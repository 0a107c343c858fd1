/**
 * @fedsynth/protocol — every message between the coordinator and the site agents (zod schemas,
 * typed), the protocol version, chunked, acknowledged, resumable, sha256-verified transfer of
 * large binaries, and the site's side of a round as one state machine (ParticipantSession).
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
  MAX_TASK_CONTEXT,
  MODALITIES,
  parseFederationConfig,
  type StrategyConfig,
  taskChannels,
} from './federation-config';
export {
  agentLimits,
  type ConnectionLimits,
  type MessageLimit,
  PRE_LOGIN_LIMITS,
} from './message-limits';
export {
  type AgentMessageName,
  type EvaluationReport,
  type ModelSource,
  type ModelStore,
  type OutboundNote,
  type ParticipantEvent,
  type ParticipantLog,
  type ParticipantOptions,
  ParticipantSession,
  type ParticipantTransport,
  type ServerMessageName,
  type TrainingResult,
} from './participant/participant-session';
export {
  PARTICIPANT_STATES,
  type ParticipantState,
  ROUND_MESSAGE_STATE,
  type RoundMessageName,
} from './participant/participant-state';
export {
  checkRoundStart,
  type RoundStart,
  type RoundStartCheck,
  roundConfigOf,
  type SecAggClientOptions,
} from './participant/round-start-check';
export {
  effectiveNoiseMultiplier,
  epsilonAfterNextRound,
  privacySpent,
  siteNoiseStd,
} from './privacy/distributed-dp';
export {
  type AccountantState,
  DEFAULT_ORDERS,
  RdpAccountant,
  rdpToEpsilon,
  sampledGaussianRdp,
} from './privacy/rdp-accountant';
export { controlScale, nextControl, type ScaffoldPlan } from './scaffold';
export * from './schemas';
export {
  chunkToUint32,
  maskedTransferId,
  parseMaskedTransferId,
  SECAGG_MESSAGES,
  uint32ToChunk,
} from './secagg-messages';
export {
  type DecodedFigure,
  decodeFigures,
  encodeFigures,
  type FigureWarning,
  isPresenceFlag,
  layoutProblem,
  type MetricSlot,
  SECURE_FIGURES,
  type SecureFigure,
  type SiteFigures,
  secureMetricsLayout,
} from './secure-metrics';
export {
  createGatewayParser,
  LimitedDecoder,
  MAX_ATTACHMENTS,
  MessageLimitError,
  socketParser,
} from './socket-parser';
