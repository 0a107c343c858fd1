import { createHash } from 'node:crypto';
import { concatBytes, lp, u32be, utf8 } from './bytes';
import { ensure, SecAggErrorCode } from './errors';

/** The stages of one secure-aggregation round, in order. */
export type SecAggStage = 'advertise-keys' | 'share-keys' | 'masked-input' | 'consistency-check' | 'unmask';
export const STAGES: readonly SecAggStage[] = [
  'advertise-keys',
  'share-keys',
  'masked-input',
  'consistency-check',
  'unmask',
];

/** One selected site of a round. */
export interface Participant {
  /** 1..2^31-1, unique in the round; also the Shamir x-coordinate of the shares this site holds. */
  index: number;
  siteId: string;
  /** Ed25519 identity public key enrolled at the coordinator (32 bytes). */
  identityKey: Uint8Array;
}

/** Fixed-point encoding of each site's (weighted) update. */
export interface QuantizationParams {
  /** Values are clipped to [-clip, clip] before encoding. */
  clip: number;
  /** Number of quantization levels Q; every encoded value lies in [0, Q-1]. */
  levels: number;
  /** Public cap on a site's weight (e.g. sample count); the encoded weight is weight / maxWeight. */
  maxWeight: number;
}

/** Who exchanges masks and shares with whom: everyone (SecAgg) or a random k-regular graph (SecAgg+). */
export type NeighbourGraph =
  | { kind: 'complete' }
  | { kind: 'harary' /** k; an odd k needs an even number of sites */; neighbours: number; seed: Uint8Array };

/** Everything both sides agree on before a round starts; its hash is the session id. */
export interface RoundConfig {
  roundId: string;
  /** Hex sha256 of the global checkpoint the round starts from. */
  modelHash: string;
  participants: Participant[];
  /** Shares needed to reconstruct any secret: counted within a neighbourhood (self included). */
  threshold: number;
  graph: NeighbourGraph;
  /** Model parameters, without the weight element that is appended to every masked vector. */
  vectorLength: number;
  quantization: QuantizationParams;
}

/** Which threshold rule a federation chose. */
export type ThreatModel = 'active' | 'honest-but-curious';

/**
 * Default threshold for a group of `n` share holders: floor(2n/3)+1 against an active adversary
 * (Bonawitz et al.), floor(n/2)+1 when the server is assumed honest-but-curious.
 */
export function defaultThreshold(n: number, model: ThreatModel = 'active'): number {
  ensure(
    Number.isInteger(n) && n >= 1,
    SecAggErrorCode.INVALID_CONFIG,
    `group size must be a positive integer, got ${n}`,
  );
  return model === 'active' ? Math.floor((2 * n) / 3) + 1 : Math.floor(n / 2) + 1;
}

/** Size of each share group: n for the complete graph, k + 1 (neighbours and self) for Harary. */
export function groupSize(config: Pick<RoundConfig, 'participants' | 'graph'>): number {
  const n = config.participants.length;
  return config.graph.kind === 'harary' && config.graph.neighbours < n - 1 ? config.graph.neighbours + 1 : n;
}

const MAX_INDEX = 2 ** 31 - 1;

/** Checks a round configuration and throws a SecAggError naming the first bad field. */
export function validateRoundConfig(config: RoundConfig): void {
  const bad = (cond: unknown, msg: string | (() => string)) =>
    ensure(cond, SecAggErrorCode.INVALID_CONFIG, msg);
  bad(typeof config.roundId === 'string' && config.roundId.length > 0, 'roundId must be a non-empty string');
  bad(/^[0-9a-f]{64}$/.test(config.modelHash), 'modelHash must be 64 lower-case hex characters (sha256)');
  const ps = config.participants;
  bad(Array.isArray(ps) && ps.length >= 3, () => `participants: need at least 3 sites, got ${ps?.length}`);
  const idx = new Set<number>();
  const ids = new Set<string>();
  const keys = new Set<string>();
  for (const p of ps) {
    bad(
      Number.isInteger(p.index) && p.index >= 1 && p.index <= MAX_INDEX,
      () => `participants: bad index ${p.index}`,
    );
    bad(!idx.has(p.index), () => `participants: duplicate index ${p.index}`);
    bad(
      typeof p.siteId === 'string' && p.siteId.length > 0,
      () => `participants[${p.index}]: siteId is empty`,
    );
    bad(!ids.has(p.siteId), () => `participants: duplicate siteId ${p.siteId}`);
    bad(
      p.identityKey instanceof Uint8Array && p.identityKey.length === 32,
      () => `participants[${p.index}]: identityKey must be 32 bytes`,
    );
    const hex = Buffer.from(p.identityKey).toString('hex');
    bad(!keys.has(hex), () => `participants[${p.index}]: identity key is used by another participant`);
    idx.add(p.index);
    ids.add(p.siteId);
    keys.add(hex);
  }
  const g = config.graph;
  if (g.kind === 'harary') {
    bad(Number.isInteger(g.neighbours) && g.neighbours >= 2, 'graph.neighbours must be an integer >= 2');
    bad(
      g.neighbours % 2 === 0 || ps.length % 2 === 0 || g.neighbours >= ps.length - 1,
      () =>
        `graph.neighbours: a ${g.neighbours}-regular graph on ${ps.length} sites needs an even number of sites or an even k`,
    );
    bad(g.seed instanceof Uint8Array && g.seed.length === 32, 'graph.seed must be 32 bytes');
  } else {
    bad(g.kind === 'complete', 'graph.kind must be "complete" or "harary"');
  }
  const m = groupSize(config);
  const t = config.threshold;
  bad(
    Number.isInteger(t) && t <= m,
    () => `threshold ${t} must be an integer no larger than the group size ${m}`,
  );
  bad(
    t >= Math.floor(m / 2) + 1,
    () => `threshold ${t} is below the majority bound floor(${m}/2)+1 = ${Math.floor(m / 2) + 1}`,
  );
  bad(
    Number.isInteger(config.vectorLength) && config.vectorLength >= 1 && config.vectorLength < 2 ** 31,
    'vectorLength must be a positive integer below 2^31',
  );
  const q = config.quantization;
  bad(Number.isFinite(q.clip) && q.clip > 0, 'quantization.clip must be a positive number');
  bad(Number.isInteger(q.levels) && q.levels >= 2, 'quantization.levels must be an integer >= 2');
  bad(Number.isFinite(q.maxWeight) && q.maxWeight > 0, 'quantization.maxWeight must be a positive number');
  bad(
    ps.length * (q.levels - 1) < 2 ** 32,
    () =>
      `quantization.levels: ${ps.length} sites x (Q-1 = ${q.levels - 1}) could wrap the 2^32 modulus; use Q <= ${Math.floor((2 ** 32 - 1) / ps.length) + 1}`,
  );
}

function f64(x: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, false);
  return b;
}

/** Canonical bytes of a configuration: the same config always encodes the same way. */
export function encodeRoundConfig(config: RoundConfig): Uint8Array {
  const ps = [...config.participants].sort((a, b) => a.index - b.index);
  const g = config.graph;
  return concatBytes(
    lp(utf8('fedsynth/secagg/v1/session')),
    lp(utf8(config.roundId)),
    lp(utf8(config.modelHash)),
    u32be(ps.length),
    ...ps.flatMap((p) => [u32be(p.index), lp(utf8(p.siteId)), lp(p.identityKey)]),
    u32be(config.threshold),
    g.kind === 'harary' ? concatBytes(utf8('H'), u32be(g.neighbours), lp(g.seed)) : utf8('C'),
    f64(config.vectorLength),
    f64(config.quantization.clip),
    f64(config.quantization.levels),
    f64(config.quantization.maxWeight),
  );
}

/** The session id: sha256 of the canonical configuration. Everything signed or derived binds to it. */
export function sessionId(config: RoundConfig): Uint8Array {
  return new Uint8Array(createHash('sha256').update(encodeRoundConfig(config)).digest());
}
