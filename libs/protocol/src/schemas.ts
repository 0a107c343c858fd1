import { createHash } from 'node:crypto';
import { ed25519Sign } from '@fedsynth/secure-agg';
import { z } from 'zod';
import { MR_SCALES } from './federation-config';
import { SECAGG_MESSAGES } from './secagg-messages';

/** Version of the coordinator <-> agent protocol; a peer speaking another version is refused. */
/** 3: round plans carry keepOptimizer by default, which agents of version 2 cannot follow. */
export const PROTOCOL_VERSION = 3;

const bytes = (len?: number, max = 1024 * 1024 + 64) =>
  z.custom<Uint8Array>(
    (v) => v instanceof Uint8Array && (len === undefined ? v.length <= max : v.length === len),
    {
      message:
        len === undefined
          ? `expected binary data of at most ${max} bytes`
          : `expected exactly ${len} bytes of binary data`,
    },
  );
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lower-case hex sha256');
const id = z.string().min(1).max(200);
const index = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
const finite = z.number().refine(Number.isFinite, 'expected a finite number');

/** Coordinator -> agent, first message on a connection: prove possession of your key by signing this. */
export const authChallenge = z.object({
  protocolVersion: z.number().int(),
  nonce: bytes(32),
  serverTime: z.string(),
});
/** Agent -> coordinator: the signature over the challenge. */
export const authResponse = z.object({
  protocolVersion: z.number().int(),
  publicKey: bytes(32),
  nonce: bytes(32),
  signature: bytes(64),
  agentVersion: z.string().max(50),
});
/** Coordinator -> agent: who the coordinator knows you as. */
export const authResult = z.object({
  siteId: id,
  siteName: z.string(),
  federationId: id.nullable(),
  /** The federation's privacy setting: send no plain-text counts (see its configuration). */
  hideCounts: z.boolean().optional(),
});

/** Agent -> coordinator after login: what the site can do right now. */
export const agentHello = z.object({
  backend: z.string().max(50),
  device: z.string().max(200),
  /** Subjects at the site; left out when the federation hides counts. */
  sampleCount: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
  accepting: z.boolean(),
  reason: z.string().max(200).optional(),
});

const participant = z.object({ index, siteId: id, identityKey: bytes(32) });
/** The secure-aggregation parameters of a round (libs/secure-agg RoundConfig, on the wire). */
export const secAggConfig = z.object({
  roundId: id,
  modelHash: hex64,
  participants: z.array(participant).min(3).max(10_000),
  threshold: z.number().int().min(2),
  graph: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('complete') }),
    z.object({ kind: z.literal('harary'), neighbours: z.number().int().min(2), seed: bytes(32) }),
  ]),
  vectorLength: z.number().int().min(1),
  quantization: z.object({
    clip: finite.refine((x) => x > 0),
    levels: z.number().int().min(2),
    maxWeight: finite.refine((x) => x > 0),
  }),
});

/**
 * What a site does in a round. Settings this version does not know are kept, not dropped, so that
 * the signature over the plan still verifies and the site can decline the round saying it needs
 * an upgrade (round-start-check.ts), instead of training without a setting it was asked to apply.
 */
export const trainingPlan = z.looseObject({
  localSteps: z.number().int().min(1).max(1_000_000),
  batchSize: z.number().int().min(1).max(1024),
  lr: finite.refine((x) => x > 0 && x < 1),
  size: z.number().int().min(8).max(1024),
  prediction: z.enum(['epsilon', 'v', 'sample']),
  schedule: z.enum(['cosine', 'linear', 'scaled-linear']),
  fedProxMu: finite.refine((x) => x >= 0),
  /** Decay of the weights' moving average a site keeps and uploads the change of; absent: none. */
  localEma: finite.refine((x) => x >= 0 && x < 1).optional(),
  /** Carry the site's optimizer state over from its previous round of this federation; absent: no. */
  keepOptimizer: z.literal(true).optional(),
  /**
   * SCAFFOLD (see scaffold.ts): the site corrects its local steps with the control variates and
   * appends its new control variate to its masked update (the round's vector is then twice the
   * model's values, plus any figure slots). `control`: the global control variate to fetch like a
   * model (absent in the first round: it is zero). Absent: plain local training.
   */
  scaffold: z
    .strictObject({
      control: z
        .strictObject({
          sha256: hex64,
          bytes: z
            .number()
            .int()
            .min(1)
            .max(2 ** 32),
        })
        .optional(),
    })
    .optional(),
  dp: z.object({
    clip: finite.refine((x) => x > 0),
    noiseMultiplier: finite.refine((x) => x >= 0),
    delta: finite.refine((x) => x > 0 && x < 1),
  }),
});

/**
 * What the federation translates: the source modalities a site reads (condition channels, in
 * order), the target it learns, the 2.5D context (neighbouring slices on each side) and the MR
 * scale. Like the plan, settings this version does not know are kept, so the signature verifies
 * and the site declines asking for an upgrade instead of training another task.
 */
export const roundTask = z.looseObject({
  sources: z.array(z.string().min(1).max(20)).min(1).max(8),
  target: z.string().min(1).max(20),
  context: z.number().int().min(0).max(3),
  /** How MR volumes are scaled (see the federation configuration's task); absent: percentile. */
  mrScale: z.enum(MR_SCALES).optional(),
});

/** Coordinator -> agents: a round begins. Deadlines are absolute ISO times per stage. */
export const roundStart = z.object({
  federationId: id,
  roundNumber: z.number().int().min(0),
  task: roundTask,
  secAgg: secAggConfig,
  modelBytes: z.number().int().min(0),
  plan: trainingPlan,
  deadlines: z.record(z.string(), z.string()),
  /**
   * With the federation's `privacy.secureMetrics`: the figures the site appends to its masked
   * update, in order, each with the range it is encoded over (see secure-metrics.ts); the round's
   * vectorLength is the model's values plus these slots. Absent: the figures are sent as reports.
   */
  metrics: z
    .array(z.object({ name: z.string().min(1).max(40), lo: finite, hi: finite }))
    .min(1)
    .max(32)
    .optional(),
  /** The coordinator's Ed25519 signature over roundStartPayload (sites verify it with the key they pinned at enrollment). */
  signature: bytes(64),
});

/** Agent -> coordinator: taking part, or declining with a reason. */
export const roundReply = z.object({
  roundId: id,
  accept: z.boolean(),
  reason: z.string().max(300).optional(),
});

/** Agent -> coordinator: fetch (part of) a blob by sha256, from an offset (resumable). */
export const blobRequest = z.object({ sha256: hex64, offset: z.number().int().min(0) });
/** One chunk of a transfer (blob download or masked-vector upload). */
export const chunk = z.object({
  transferId: id,
  offset: z.number().int().min(0),
  total: z.number().int().min(0),
  data: bytes(),
});

/**
 * Ranges of what agents report. Every figure is bounded, so one lying site moves a global figure by
 * at most its (capped) weight times the range: MAE in HU cannot exceed the width of the CT window
 * by much, SSIM is in [-1, 1], a PSNR above 200 dB or a loss above 1000 is no real measurement.
 */
export const REPORT_RANGES = {
  loss: [0, 1000],
  mae: [0, 10_000],
  psnr: [0, 200],
  ssim: [-1, 1],
  epsilon: [0, 1_000_000],
  /** RMS distances on the model's [-1, 1] scale. */
  nearest: [0, 2],
} as const;

const inRange = (name: keyof typeof REPORT_RANGES) => {
  const [lo, hi] = REPORT_RANGES[name];
  return finite.refine((x) => x >= lo && x <= hi, `${name} must be in [${lo}, ${hi}]`);
};

/**
 * Agent -> coordinator: training finished (aggregate figures only). In a round whose start lists
 * `metrics` the loss travels in the masked vector and the report carries no figure (no loss, no
 * epsilon): only that the site trained, and how many steps.
 */
export const trainReport = z.object({
  roundId: id,
  loss: inRange('loss').optional(),
  steps: z.number().int().min(0).max(1_000_000),
  epsilon: inRange('epsilon').nullable().optional(),
});

/**
 * Agent -> coordinator: local training failed (the reason, e.g. the data folder is gone); the site
 * drops out of the round now instead of being waited for until the stage deadline.
 */
export const trainFailed = z.object({ roundId: id, reason: z.string().max(300) });
/** Coordinator -> agents: score the new global model (fetch it by hash) on your validation split. */
export const roundEvaluate = z.object({ roundId: id, modelHash: hex64, modelBytes: z.number().int().min(0) });

/** Agent -> coordinator: the new global model scored on the site's validation split. */
export const evalReport = z.object({
  roundId: id,
  modelHash: hex64,
  mae: inRange('mae'),
  psnr: inRange('psnr'),
  ssim: inRange('ssim'),
  /** Validation slices; the coordinator caps the weight it gives them (the federation's maxEvalCount). */
  count: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /**
   * Memorization check, means over the scored slices: the RMS distance of each synthesized slice
   * to its nearest training slice at the site, and of each real validation slice to it.
   */
  nearestSynth: inRange('nearest').optional(),
  nearestReal: inRange('nearest').optional(),
});

/** Either side: a refusal or failure the other side should know about. */
export const protocolError = z.object({
  code: z.string().max(60),
  message: z.string().max(2000),
  ref: z.string().max(200).optional(),
});

/** Every message with its schema, by socket.io event name. */
export const MESSAGES = {
  'auth.challenge': authChallenge,
  'auth.response': authResponse,
  'auth.ok': authResult,
  'agent.hello': agentHello,
  'round.start': roundStart,
  'round.reply': roundReply,
  'blob.request': blobRequest,
  'blob.chunk': chunk,
  'secagg.masked-chunk': chunk,
  'round.train-report': trainReport,
  'train.failed': trainFailed,
  'round.evaluate': roundEvaluate,
  'round.eval-report': evalReport,
  'protocol.error': protocolError,
  ...SECAGG_MESSAGES,
} as const;

/** Events the coordinator sends to agents. */
export const SERVER_TO_AGENT = [
  'round.evaluate',
  'auth.challenge',
  'auth.ok',
  'round.start',
  'blob.chunk',
  'secagg.roster',
  'secagg.inbox',
  'secagg.survivors',
  'secagg.consistency-result',
  'protocol.error',
] as const;
/** Events agents send to the coordinator. */
export const AGENT_TO_SERVER = [
  'auth.response',
  'agent.hello',
  'round.reply',
  'blob.request',
  'secagg.advertise',
  'secagg.shares',
  'secagg.masked-chunk',
  'secagg.consistency',
  'secagg.unmask',
  'round.train-report',
  'train.failed',
  'round.eval-report',
  'protocol.error',
] as const;

export type MessageName = keyof typeof MESSAGES;
export type Message<N extends MessageName> = z.infer<(typeof MESSAGES)[N]>;

/** A message that failed validation; the text names the event and every bad field. */
export class ProtocolError extends Error {
  constructor(
    readonly code: 'UNKNOWN_MESSAGE' | 'INVALID_MESSAGE' | 'WRONG_VERSION',
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Validates an inbound payload against its event's schema; throws a ProtocolError naming the problems. */
export function parseMessage<N extends MessageName>(name: N, payload: unknown): Message<N> {
  const schema = MESSAGES[name];
  if (!schema) throw new ProtocolError('UNKNOWN_MESSAGE', `unknown message "${String(name)}"`);
  const r = schema.safeParse(payload);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
    throw new ProtocolError('INVALID_MESSAGE', `${String(name)}: ${problems.slice(0, 5).join('; ')}`);
  }
  return r.data as Message<N>;
}

/**
 * How site IT upgrades an agent: the npm package, or the systemd install from a newer tarball.
 * Part of the coordinator's refusal, since an outdated agent shows that text as it is.
 */
export const AGENT_UPGRADE_HINT =
  'npm install -g fedsynth-site-agent@latest, or deploy/agent/install.sh --package with a newer fedsynth-site-agent tarball';

/**
 * The coordinator's check of an agent's protocol version at login: refuses another version,
 * naming both and saying which side to upgrade (and how, for an agent).
 */
export function checkVersion(theirs: number): void {
  if (theirs !== PROTOCOL_VERSION) {
    const both = `this agent speaks protocol version ${theirs}; the coordinator speaks version ${PROTOCOL_VERSION}`;
    throw new ProtocolError(
      'WRONG_VERSION',
      theirs < PROTOCOL_VERSION
        ? `${both}: upgrade the agent (${AGENT_UPGRADE_HINT}), then restart it`
        : `${both}: upgrade the coordinator, or run the agent release that speaks version ${PROTOCOL_VERSION}`,
    );
  }
}

type Handler<N extends MessageName> = (
  message: Message<N>,
  ack?: (reply: { ok: true; offset?: number } | { ok: false; code: string; message: string }) => void,
) => void;

/** socket.io event map of what the coordinator emits (use as `Socket<AgentToServerEvents, ServerToAgentEvents>`). */
export type ServerToAgentEvents = { [N in (typeof SERVER_TO_AGENT)[number]]: Handler<N> };
/** socket.io event map of what an agent emits. */
export type AgentToServerEvents = { [N in (typeof AGENT_TO_SERVER)[number]]: Handler<N> };

/** Bytes an agent signs to log in: a domain label, the connection's nonce, its public key. */
export function authPayload(nonce: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode('fedsynth/auth/v1\n');
  const out = new Uint8Array(label.length + nonce.length + publicKey.length);
  out.set(label, 0);
  out.set(nonce, label.length);
  out.set(publicKey, label.length + nonce.length);
  return out;
}

/**
 * An agent's answer to a login challenge: its public key and its Ed25519 signature (64-byte
 * tweetnacl-layout secret key) over authPayload(nonce, publicKey).
 */
export function signedAuthResponse(
  nonce: Uint8Array,
  identity: { publicKey: Uint8Array; secretKey: Uint8Array },
  agentVersion: string,
): z.infer<typeof authResponse> {
  const n = new Uint8Array(nonce);
  return {
    protocolVersion: PROTOCOL_VERSION,
    publicKey: identity.publicKey,
    nonce: n,
    signature: ed25519Sign(identity.secretKey, authPayload(n, identity.publicKey)),
    agentVersion,
  };
}

/** Bytes a site signs to enroll, proving it holds the key: a domain label, the token, the key. */
export function enrollmentPayload(token: string, publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(
    Buffer.concat([
      Buffer.from('fedsynth/enroll/v1\n'),
      Buffer.from(token),
      Buffer.from('\n'),
      Buffer.from(publicKey),
    ]),
  );
}

/**
 * Bytes the coordinator signs for a round start: a label, the secure-aggregation session id (which
 * already binds round, model hash, participants and parameters) and the sha256 of the rest of the
 * message (task, plan, deadlines, federation, round number, model size, and the metric slots when
 * the round has them) in canonical JSON.
 */
export function roundStartPayload(
  sessionId: Uint8Array,
  rest: {
    federationId: string;
    roundNumber: number;
    task: unknown;
    modelBytes: number;
    plan: unknown;
    deadlines: unknown;
    metrics?: unknown;
  },
): Uint8Array {
  const canonical = (v: unknown): string =>
    Array.isArray(v)
      ? `[${v.map(canonical).join(',')}]`
      : v && typeof v === 'object'
        ? `{${Object.keys(v as object)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
            .join(',')}}`
        : JSON.stringify(v);
  const digest = createHash('sha256')
    .update(
      canonical({
        federationId: rest.federationId,
        roundNumber: rest.roundNumber,
        task: rest.task,
        modelBytes: rest.modelBytes,
        plan: rest.plan,
        deadlines: rest.deadlines,
        ...(rest.metrics !== undefined ? { metrics: rest.metrics } : {}),
      }),
    )
    .digest();
  const label = new TextEncoder().encode('fedsynth/round-start/v1\n');
  const out = new Uint8Array(label.length + sessionId.length + digest.length);
  out.set(label, 0);
  out.set(sessionId, label.length);
  out.set(digest, label.length + sessionId.length);
  return out;
}
