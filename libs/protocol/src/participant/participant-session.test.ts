import { createHash } from 'node:crypto';
import {
  type AggregateResult,
  CHUNK_ELEMENTS,
  type RoundConfig,
  SecAggClient,
  SecAggServer,
  sessionId,
} from '@fedsynth/secure-agg';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../chunked';
import { authPayload, type Message, PROTOCOL_VERSION, parseMessage, roundStartPayload } from '../schemas';
import { chunkToUint32, maskedTransferId } from '../secagg-messages';
import {
  type ModelStore,
  type OutboundNote,
  type ParticipantEvent,
  type ParticipantOptions,
  ParticipantSession,
} from './participant-session';
import { type ParticipantState, ROUND_MESSAGE_STATE, type RoundMessageName } from './participant-state';
import type { RoundStart } from './round-start-check';

/**
 * The participant session against a real in-memory SecAggServer and a coordinator stand-in that
 * serves models and acknowledges chunks: whole rounds, every stage transition, declined round
 * starts, model downloads and failed training. No sockets: the transport is a pair of functions.
 */

/** A deterministic byte source (SHA-256 in counter mode), so every round here is reproducible. */
function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - o)), o);
    }
    return out;
  };
}

const keyOf = (i: number) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i));
const SITE_KEYS = [1, 2, 3, 4].map(keyOf);
const COORDINATOR = keyOf(100);
const MODEL = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 255);
const NEW_MODEL = Uint8Array.from({ length: 700 }, (_, i) => (i * 11 + 5) & 255);
/** Stands for a SCAFFOLD round's global control variate. */
const CONTROL = Uint8Array.from({ length: 300 }, (_, i) => (i * 13 + 1) & 255);
const BLOBS = new Map([
  [sha256Hex(MODEL), MODEL],
  [sha256Hex(NEW_MODEL), NEW_MODEL],
  [sha256Hex(CONTROL), CONTROL],
]);
const FULL_ROUND: ParticipantState[] = [
  'round-accepted',
  'keys-advertised',
  'shares-sent',
  'sending-masked-input',
  'masked-input-sent',
  'consistency-signed',
  'unmasked',
  'evaluating',
  'done',
];

function configOf(
  roundId: string,
  vectorLength: number,
  keys: nacl.SignKeyPair[] = SITE_KEYS,
  threshold = 3,
): RoundConfig {
  return {
    roundId,
    modelHash: sha256Hex(MODEL),
    participants: keys.map((k, i) => ({ index: i + 1, siteId: `s${i + 1}`, identityKey: k.publicKey })),
    threshold,
    graph: { kind: 'complete' },
    vectorLength,
    quantization: { clip: 0.5, levels: 65536, maxWeight: 100 },
  };
}

/** A round start as the coordinator sends it, signed by `signer` (the coordinator by default). */
function signedStart(
  config: RoundConfig,
  signer = COORDINATOR.secretKey,
  planExtra: Record<string, unknown> = {},
): RoundStart {
  const start = {
    federationId: 'fed',
    roundNumber: Number(config.roundId.split(':')[1] ?? 0),
    task: { sources: ['mr'], target: 'ct', context: 0 },
    secAgg: config,
    modelBytes: MODEL.length,
    plan: {
      localSteps: 5,
      batchSize: 2,
      lr: 1e-3,
      size: 16,
      prediction: 'sample' as const,
      schedule: 'cosine' as const,
      fedProxMu: 0,
      dp: { clip: 1, noiseMultiplier: 0, delta: 1e-5 },
      ...planExtra,
    },
    deadlines: {},
  };
  return {
    ...start,
    signature: nacl.sign.detached(roundStartPayload(sessionId(config), start), signer),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface SiteOptions {
  delta?: Float32Array;
  /** What training gives as its control variate (SCAFFOLD rounds). */
  control?: Float32Array;
  weight?: number;
  session?: Partial<ParticipantOptions>;
}

/**
 * One site: a participant session whose transport records what it sends, answers `blob.request`s
 * from BLOBS in small chunks (or with a refusal), and acknowledges masked chunks through `ack`.
 */
class Site {
  readonly sent: { event: string; payload: unknown; note?: OutboundNote }[] = [];
  readonly events: ParticipantEvent[] = [];
  readonly logs: string[] = [];
  readonly session: ParticipantSession;
  /** What the coordinator does with each masked chunk before acknowledging it (set by the round). */
  ack: (m: Message<'secagg.masked-chunk'>) => Promise<void> = async () => undefined;
  /** Runs on every outbound message before it is recorded. */
  onSend: (event: string, payload: unknown) => void = () => undefined;
  /** Training and evaluation wait for these. */
  trainGate: Promise<void> = Promise.resolve();
  evalGate: Promise<void> = Promise.resolve();
  trainError: Error | null = null;
  /** Blob serving: chunk size, chunks sent before the connection "drops", bytes served instead. */
  chunkSize = 128;
  cutAfter = Number.POSITIVE_INFINITY;
  tamper: ((bytes: Uint8Array) => Uint8Array) | null = null;
  /** Models training received, and the cancellation check of the last training. */
  readonly trainedOn: Uint8Array[] = [];
  /** The global control variates training received (null: the round offered none). */
  readonly controlsGiven: (Uint8Array | null)[] = [];
  cancelled: () => boolean = () => false;

  constructor(
    readonly kp: nacl.SignKeyPair,
    opts: SiteOptions = {},
  ) {
    const delta = opts.delta ?? new Float32Array(10).fill(0.1);
    const weight = opts.weight ?? 1;
    this.session = new ParticipantSession({
      identity: kp,
      coordinatorKey: COORDINATOR.publicKey,
      agentVersion: 'test',
      transport: {
        send: (event, payload) => {
          this.onSend(event, payload);
          this.sent.push({ event, payload });
          if (event === 'blob.request') setImmediate(() => this.serve(payload as Message<'blob.request'>));
        },
        sendWithAck: async (event, payload, _timeoutMs, note) => {
          this.onSend(event, payload);
          this.sent.push({ event, payload, ...(note ? { note } : {}) });
          await this.ack(payload as Message<'secagg.masked-chunk'>);
        },
      },
      train: async (_start, model, cancelled, control) => {
        this.cancelled = cancelled;
        await this.trainGate;
        this.trainedOn.push(await model());
        this.controlsGiven.push(control ? await control() : null);
        if (this.trainError) throw this.trainError;
        return {
          delta,
          weight,
          report: { loss: 0.25, steps: 5, epsilon: null },
          ...(opts.control ? { control: opts.control } : {}),
        };
      },
      evaluate: async (request, model) => {
        await this.evalGate;
        const bytes = await model();
        expect(sha256Hex(bytes)).toBe(request.modelHash);
        return { mae: 40, psnr: 30, ssim: 0.9, count: weight };
      },
      log: {
        info: (m) => this.logs.push(m),
        warn: (m) => this.logs.push(m),
        error: (m) => this.logs.push(m),
      },
      onEvent: (e) => this.events.push(e),
      createClient: (o) =>
        new SecAggClient({ ...o, random: seededRandom(`${o.config.roundId}/${o.selfIndex}`) }),
      ...opts.session,
    });
  }

  private serve(m: Message<'blob.request'>): void {
    const blob = BLOBS.get(m.sha256);
    if (!blob) {
      void this.session.receive('protocol.error', {
        code: 'NOT_FOUND',
        message: 'no such model',
        ref: m.sha256,
      });
      return;
    }
    const bytes = this.tamper ? this.tamper(blob) : blob;
    let sent = 0;
    for (let o = m.offset; o < bytes.length; o += this.chunkSize) {
      if (sent++ === this.cutAfter) {
        this.cutAfter = Number.POSITIVE_INFINITY; // the connection dropped: the rest is lost
        return;
      }
      const data = bytes.slice(o, Math.min(bytes.length, o + this.chunkSize));
      void this.session.receive('blob.chunk', { transferId: m.sha256, offset: o, total: bytes.length, data });
    }
  }

  /** Outbound events, in order (blob requests left out: they interleave with training). */
  stageMessages(): string[] {
    return this.sent.map((s) => s.event).filter((e) => e !== 'blob.request');
  }

  last<N extends string>(event: N): unknown {
    return this.sent.filter((s) => s.event === event).at(-1)?.payload;
  }

  states(roundId?: string): ParticipantState[] {
    return this.events.flatMap((e) =>
      e.type === 'state' && (!roundId || e.roundId === roundId) ? [e.state] : [],
    );
  }
}

/**
 * The coordinator's side of one round in memory: a real SecAggServer, fed only with what the sites'
 * sessions send (validated with parseMessage, as the gateway does), stage by stage.
 */
class InMemoryRound {
  readonly server: SecAggServer;
  result: AggregateResult | null = null;

  constructor(
    readonly config: RoundConfig,
    readonly sites: Site[],
    readonly start: RoundStart = signedStart(config),
  ) {
    this.server = new SecAggServer(config);
    sites.forEach((site, k) => {
      const index = k + 1;
      site.ack = async (payload) => {
        const m = parseMessage('secagg.masked-chunk', payload);
        expect(m.transferId).toBe(maskedTransferId(config.roundId, index));
        this.server.receiveMaskedChunk(index, m.offset / 4, chunkToUint32(m.data));
        if (m.offset + m.data.length === m.total) this.server.completeMaskedInput(index);
      };
    });
  }

  private site(index: number): Site {
    return this.sites[index - 1];
  }

  async begin(): Promise<void> {
    for (const s of this.sites) await s.session.receive('round.start', this.start);
    this.sites.forEach((s) => {
      const advert = s.last('secagg.advertise');
      if (advert) this.server.receiveAdvertise(parseMessage('secagg.advertise', advert));
    });
  }

  async shareKeys(): Promise<void> {
    for (const [i, roster] of this.server.closeAdvertise()) {
      await this.site(i).session.receive('secagg.roster', roster);
      const shares = this.site(i).last('secagg.shares');
      if (shares) this.server.receiveShares(parseMessage('secagg.shares', shares));
    }
  }

  /** Delivers the share inboxes to `active` sites (all by default) and waits for their uploads. */
  async maskedInput(active: (i: number) => boolean = () => true): Promise<void> {
    const inboxes = [...this.server.closeShareKeys()].filter(([i]) => active(i));
    await Promise.all(inboxes.map(([i, inbox]) => this.site(i).session.receive('secagg.inbox', inbox)));
  }

  async consistency(): Promise<void> {
    for (const [i, list] of this.server.closeMaskedInput()) {
      await this.site(i).session.receive('secagg.survivors', list);
      this.server.receiveConsistency(
        parseMessage('secagg.consistency', this.site(i).last('secagg.consistency')),
      );
    }
  }

  async unmask(): Promise<void> {
    for (const [i, result] of this.server.closeConsistency()) {
      await this.site(i).session.receive('secagg.consistency-result', result);
      this.server.receiveUnmask(parseMessage('secagg.unmask', this.site(i).last('secagg.unmask')));
    }
  }

  /** Unmasks the sum, then asks the survivors to score the new model. */
  async evaluate(): Promise<void> {
    this.result = this.server.finalize();
    await Promise.all(
      this.result.survivors.map((i) => this.site(i).session.receive('round.evaluate', this.evaluation)),
    );
  }

  get evaluation(): Message<'round.evaluate'> {
    return { roundId: this.config.roundId, modelHash: sha256Hex(NEW_MODEL), modelBytes: NEW_MODEL.length };
  }
}

/** The stages of a round and the state site 1 is in after each. */
const STEPS: [ParticipantState, (r: InMemoryRound) => Promise<void>][] = [
  ['keys-advertised', (r) => r.begin()],
  ['shares-sent', (r) => r.shareKeys()],
  ['masked-input-sent', (r) => r.maskedInput()],
  ['consistency-signed', (r) => r.consistency()],
  ['unmasked', (r) => r.unmask()],
  ['done', (r) => r.evaluate()],
];

const n = (length: number, k: number) =>
  Float32Array.from({ length }, (_, i) => 0.2 * Math.sin(i * 0.37 * (k + 1)));

function expectMean(
  result: AggregateResult,
  deltas: Float32Array[],
  weights: number[],
  survivors: number[],
): void {
  const total = survivors.reduce((a, i) => a + weights[i - 1], 0);
  for (let j = 0; j < result.mean.length; j += Math.max(1, Math.floor(result.mean.length / 200))) {
    const mean = survivors.reduce((a, i) => a + weights[i - 1] * deltas[i - 1][j], 0) / total;
    expect(Math.abs(result.mean[j] - mean)).toBeLessThanOrEqual(result.errorBound);
  }
}

describe('ParticipantSession in a whole round', () => {
  it('four sessions, one dropping after key sharing: the aggregate is the weighted mean of the other three', async () => {
    const length = CHUNK_ELEMENTS + 1000; // two chunks per masked upload
    const deltas = [0, 1, 2, 3].map((k) => n(length, k));
    const weights = [30, 10, 20, 50];
    const sites = SITE_KEYS.map((kp, k) => new Site(kp, { delta: deltas[k], weight: weights[k] }));
    const round = new InMemoryRound(configOf('fed:1', length), sites);

    await round.begin();
    await round.shareKeys();
    await round.maskedInput((i) => i !== 4); // site 4 is gone after sharing its keys
    await round.consistency();
    await round.unmask();
    await round.evaluate();

    const result = round.result!;
    expect(result.survivors).toEqual([1, 2, 3]);
    expect(result.dropouts).toEqual([{ index: 4, stage: 'masked-input' }]);
    expectMean(result, deltas, weights, [1, 2, 3]);
    expect(sites[0].states()).toEqual(FULL_ROUND);
    expect(sites[3].session.state).toBe('shares-sent');
    expect(sites[0].stageMessages()).toEqual([
      'round.reply',
      'secagg.advertise',
      'secagg.shares',
      'round.train-report',
      'secagg.masked-chunk',
      'secagg.masked-chunk',
      'secagg.consistency',
      'secagg.unmask',
      'round.eval-report',
    ]);
    const chunks = sites[1].sent.filter((s) => s.event === 'secagg.masked-chunk').map((s) => s.payload);
    expect(chunks).toMatchObject([
      { transferId: 'fed:1/2', offset: 0, total: (length + 1) * 4 },
      { transferId: 'fed:1/2', offset: CHUNK_ELEMENTS * 4, total: (length + 1) * 4 },
    ]);
    expect(parseMessage('round.train-report', sites[2].last('round.train-report'))).toEqual({
      roundId: 'fed:1',
      loss: 0.25,
      steps: 5,
      epsilon: null,
    });
    expect(parseMessage('round.eval-report', sites[0].last('round.eval-report'))).toEqual({
      roundId: 'fed:1',
      modelHash: sha256Hex(NEW_MODEL),
      mae: 40,
      psnr: 30,
      ssim: 0.9,
      count: 30,
    });
    for (const s of sites.slice(0, 3)) expect(s.trainedOn.map(sha256Hex)).toEqual([sha256Hex(MODEL)]);
    expect(sites[0].events.find((e) => e.type === 'state' && e.state === 'masked-input-sent')).toMatchObject({
      report: { loss: 0.25, steps: 5, epsilon: null },
    });
  });

  it('answers a login challenge with its key and a signature over the nonce', async () => {
    const site = new Site(SITE_KEYS[0]);
    const nonce = new Uint8Array(32).fill(42);
    await site.session.receive('auth.challenge', {
      protocolVersion: PROTOCOL_VERSION,
      nonce,
      serverTime: new Date().toISOString(),
    });
    const answer = parseMessage('auth.response', site.last('auth.response'));
    expect(answer.publicKey).toEqual(SITE_KEYS[0].publicKey);
    expect(
      nacl.sign.detached.verify(authPayload(nonce, answer.publicKey), answer.signature, answer.publicKey),
    ).toBe(true);
  });

  it('uploads the masked vector one acknowledged chunk at a time', async () => {
    const length = 2 * CHUNK_ELEMENTS + 10; // three chunks
    const sites = SITE_KEYS.map((kp, k) => new Site(kp, { delta: n(length, k) }));
    const round = new InMemoryRound(configOf('fed:1', length), sites);
    await round.begin();
    await round.shareKeys();
    const held: (() => void)[] = [];
    const feed = sites[0].ack;
    sites[0].ack = async (m) => {
      await feed(m);
      await new Promise<void>((release) => held.push(release));
    };
    const uploads = round.maskedInput();
    const sentChunks = () => sites[0].sent.filter((s) => s.event === 'secagg.masked-chunk').length;
    for (let k = 1; k <= 3; k++) {
      await until(`chunk ${k}`, () => held.length === k);
      for (let i = 0; i < 20; i++) await tick();
      expect(sentChunks()).toBe(k); // the next chunk waits for this one's acknowledgement
      expect(sites[0].session.state).toBe('sending-masked-input');
      held[k - 1]();
    }
    await uploads;
    expect(sites[0].session.state).toBe('masked-input-sent');
  });

  it('drops out when the coordinator refuses a chunk, sending nothing more of the upload', async () => {
    const length = CHUNK_ELEMENTS + 10;
    const sites = SITE_KEYS.map((kp, k) => new Site(kp, { delta: n(length, k) }));
    const round = new InMemoryRound(configOf('fed:1', length), sites);
    await round.begin();
    await round.shareKeys();
    sites[0].ack = async () => {
      throw new Error('secagg.masked-chunk refused: UPLOAD_CLOSED the stage ended');
    };
    await round.maskedInput();
    expect(sites[0].session.state).toBe('failed');
    expect(sites[0].sent.filter((s) => s.event === 'secagg.masked-chunk')).toHaveLength(1);
    expect(sites[0].events.at(-1)).toMatchObject({
      state: 'failed',
      reason: expect.stringMatching(/UPLOAD_CLOSED/),
    });
    // The other three complete the round without it.
    await round.consistency();
    await round.unmask();
    await round.evaluate();
    expect(round.result!.survivors).toEqual([2, 3, 4]);
  });

  it('takes a survivor list that overtakes the acknowledgement of its last chunk once the upload ends', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    await round.shareKeys();
    let release: () => void = () => undefined;
    const feed = sites[0].ack;
    sites[0].ack = async (m) => {
      await feed(m); // the coordinator has the chunk; its acknowledgement is late
      await new Promise<void>((r) => {
        release = r;
      });
    };
    const uploads = round.maskedInput();
    await until('site 1 to send its chunk', () => sites[0].last('secagg.masked-chunk') !== undefined);
    const lists = round.server.closeMaskedInput();
    const survivors = sites[0].session.receive('secagg.survivors', lists.get(1));
    await tick();
    expect(sites[0].session.state).toBe('sending-masked-input');
    release();
    await Promise.all([uploads, survivors]);
    expect(sites[0].session.state).toBe('consistency-signed');
    expect(sites[0].last('secagg.consistency')).toBeDefined();
  });
});

/** A well-formed message of `event` for round `roundId`, sent to site 1 at the wrong time. */
function stray(event: RoundMessageName, config: RoundConfig): unknown {
  const envelope = { roundId: config.roundId, sessionId: sessionId(config), recipient: 1 };
  switch (event) {
    case 'secagg.roster':
      return { ...envelope, adverts: [] };
    case 'secagg.inbox':
      return { ...envelope, shares: [] };
    case 'secagg.survivors':
      return { ...envelope, survivors: [1, 2, 3] };
    case 'secagg.consistency-result':
      return { ...envelope, survivors: [1, 2, 3], dropouts: [], signatures: [] };
    case 'round.evaluate':
      return { roundId: config.roundId, modelHash: sha256Hex(NEW_MODEL), modelBytes: NEW_MODEL.length };
  }
}

const ROUND_MESSAGES = Object.keys(ROUND_MESSAGE_STATE) as RoundMessageName[];

/** Sends site 1 every round message that does not belong to `state`; each must be refused and change nothing. */
async function expectRefusals(site: Site, state: ParticipantState, config: RoundConfig): Promise<void> {
  for (const event of ROUND_MESSAGES) {
    if (ROUND_MESSAGE_STATE[event] === state) continue;
    if (state === 'sending-masked-input' && event === 'secagg.survivors') continue; // waits (see above)
    const sent = site.sent.length;
    const events = site.events.length;
    await site.session.receive(event, stray(event, config));
    expect(site.session.state, `${event} in ${state}`).toBe(state);
    expect(site.sent.length, `${event} in ${state} sent something`).toBe(sent);
    expect(site.events.length, `${event} in ${state} changed the state`).toBe(events);
    expect(site.logs.at(-1)).toBe(
      state === 'idle'
        ? `ignored ${event} of a round this site is not in`
        : `refused ${event} in state ${state}`,
    );
  }
}

describe('ParticipantSession in a SCAFFOLD round', () => {
  const scaffoldStart = (config: RoundConfig) =>
    signedStart(config, COORDINATOR.secretKey, {
      scaffold: { control: { sha256: sha256Hex(CONTROL), bytes: CONTROL.length } },
    });

  it('fetches the control variate the plan names (not into the model store) and sends its own after the update, in the masked vector', async () => {
    const m = 700;
    const deltas = [0, 1, 2, 3].map((k) => n(m, k));
    const controls = [0, 1, 2, 3].map((k) => n(m, k + 7));
    const weights = [30, 10, 20, 50];
    const stored: string[] = [];
    const models: ModelStore = {
      load: async () => null,
      save: async (sha) => {
        stored.push(sha);
      },
    };
    const sites = SITE_KEYS.map(
      (kp, k) =>
        new Site(kp, { delta: deltas[k], control: controls[k], weight: weights[k], session: { models } }),
    );
    const config = configOf('fed:1', 2 * m);
    const round = new InMemoryRound(config, sites, scaffoldStart(config));

    await round.begin();
    await round.shareKeys();
    await round.maskedInput();
    await round.consistency();
    await round.unmask();
    await round.evaluate();

    const vectors = deltas.map((d, k) => {
      const v = new Float32Array(2 * m);
      v.set(d, 0);
      v.set(controls[k], m);
      return v;
    });
    expectMean(round.result!, vectors, weights, [1, 2, 3, 4]);
    for (const s of sites)
      expect(s.controlsGiven.map((c) => c && sha256Hex(c))).toEqual([sha256Hex(CONTROL)]);
    expect(stored).not.toContain(sha256Hex(CONTROL));
    expect(sites[0].logs).toContain('the control variate goes inside the masked vector, after the update');
    // The audit log learns which chunk carried it.
    expect(sites[0].sent.filter((x) => x.event === 'secagg.masked-chunk').map((x) => x.note)).toEqual([
      { inside: ['scaffold_control'] },
    ]);
  });

  it('drops out with train.failed naming the problem when the control variate is missing, of another length or not finite', async () => {
    const config = configOf('fed:1', 20);
    const cases: [Float32Array | undefined, string][] = [
      [undefined, 'the round is a SCAFFOLD round: the control variate has no values; the round expects 10'],
      [
        new Float32Array(9),
        'the round is a SCAFFOLD round: the control variate has 9 values; the round expects 10',
      ],
      [Float32Array.of(0, 0, 0, Number.NaN, 0, 0, 0, 0, 0, 0), "the control variate's value 3 is NaN"],
    ];
    for (const [control, reason] of cases) {
      const site = new Site(SITE_KEYS[0], { delta: new Float32Array(10), control });
      await site.session.receive('round.start', scaffoldStart(config));
      await until('train.failed', () => site.last('train.failed') !== undefined);
      expect(parseMessage('train.failed', site.last('train.failed')).reason).toBe(reason);
    }
  });

  it('declines a SCAFFOLD start whose vector cannot hold two equal halves', async () => {
    const site = new Site(SITE_KEYS[0]);
    await site.session.receive('round.start', scaffoldStart(configOf('fed:1', 21)));
    expect(parseMessage('round.reply', site.last('round.reply'))).toEqual({
      roundId: 'fed:1',
      accept: false,
      reason:
        "a SCAFFOLD round's vector holds the update and the control variate, two equal halves; 21 values cannot be split",
    });
  });
});

describe('ParticipantSession stage transitions', () => {
  it.each(STEPS.map(([state], k) => [state, k] as const))(
    'in %s it refuses every other round message, then still completes the round',
    async (state, k) => {
      const deltas = [0, 1, 2, 3].map((j) => n(10, j));
      const sites = SITE_KEYS.map((kp, j) => new Site(kp, { delta: deltas[j] }));
      const round = new InMemoryRound(configOf('fed:1', 10), sites);
      for (const [, step] of STEPS.slice(0, k + 1)) await step(round);
      expect(sites[0].session.state).toBe(state);
      await expectRefusals(sites[0], state, round.config);
      for (const [, step] of STEPS.slice(k + 1)) await step(round);
      expect(sites[0].states()).toEqual(FULL_ROUND);
      expectMean(round.result!, deltas, [1, 1, 1, 1], [1, 2, 3, 4]);
    },
  );

  it('in idle it ignores every round message', async () => {
    const site = new Site(SITE_KEYS[0]);
    await expectRefusals(site, 'idle', configOf('fed:1', 10));
    expect(site.sent).toEqual([]);
  });

  it('in round-accepted (while it answers the start) it refuses every round message', async () => {
    const site = new Site(SITE_KEYS[0]);
    const config = configOf('fed:1', 10);
    const seen: ParticipantState[] = [];
    site.onSend = (event, payload) => {
      if (event !== 'round.reply' || !(payload as { accept: boolean }).accept) return;
      seen.push(site.session.state);
      // Delivered while the session is still sending its reply (a transport may do that).
      for (const e of ROUND_MESSAGES) void site.session.receive(e, stray(e, config));
    };
    await site.session.receive('round.start', signedStart(config));
    expect(seen).toEqual(['round-accepted']);
    expect(site.logs.filter((l) => l.startsWith('refused'))).toEqual(
      ROUND_MESSAGES.map((e) => `refused ${e} in state round-accepted`),
    );
    expect(site.session.state).toBe('keys-advertised');
    expect(site.stageMessages()).toEqual(['round.reply', 'secagg.advertise']);
  });

  it('in sending-masked-input (training still running) it refuses every other round message', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    let trained: () => void = () => undefined;
    sites[0].trainGate = new Promise((r) => {
      trained = r;
    });
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    await round.shareKeys();
    const uploads = round.maskedInput();
    await until('site 1 waiting for training', () => sites[0].session.state === 'sending-masked-input');
    await expectRefusals(sites[0], 'sending-masked-input', round.config);
    trained();
    await uploads;
    for (const [, step] of STEPS.slice(3)) await step(round);
    expect(sites[0].states()).toEqual(FULL_ROUND);
  });

  it('in evaluating it refuses every round message, a second evaluation request included', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    let scored: () => void = () => undefined;
    sites[0].evalGate = new Promise((r) => {
      scored = r;
    });
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    for (const [, step] of STEPS.slice(0, 5)) await step(round);
    const evaluation = round.evaluate();
    await until('site 1 evaluating', () => sites[0].session.state === 'evaluating');
    await expectRefusals(sites[0], 'evaluating', round.config);
    scored();
    await evaluation;
    expect(sites[0].session.state).toBe('done');
    expect(sites[0].sent.filter((s) => s.event === 'round.eval-report')).toHaveLength(1);
  });

  it('in failed it refuses every round message', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    sites[0].trainError = new Error('the data folder is gone');
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    await until('site 1 to fail', () => sites[0].session.state === 'failed');
    await expectRefusals(sites[0], 'failed', round.config);
  });

  it('ignores a message of the right stage for another round', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    const other = configOf('fed:9', 10);
    const sent = sites[0].sent.length;
    await sites[0].session.receive('secagg.roster', stray('secagg.roster', other));
    expect(sites[0].session.state).toBe('keys-advertised');
    expect(sites[0].sent.length).toBe(sent);
    expect(sites[0].logs.at(-1)).toBe('ignored secagg.roster of a round this site is not in');
  });

  it('fails the round (and sends nothing) when the SecAgg client refuses a stage message', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    const rosters = round.server.closeAdvertise();
    const roster = rosters.get(1)!;
    const sent = sites[0].sent.length;
    await sites[0].session.receive('secagg.roster', { ...roster, adverts: roster.adverts.slice(1) });
    expect(sites[0].session.state).toBe('failed');
    expect(sites[0].sent.length).toBe(sent);
    expect(sites[0].events.at(-1)).toMatchObject({
      state: 'failed',
      reason: expect.stringMatching(/own advert/),
    });
    expect(sites[0].cancelled()).toBe(true);
  });

  it('ignores a malformed message, naming the bad field', async () => {
    const site = new Site(SITE_KEYS[0]);
    await site.session.receive('round.start', {
      ...signedStart(configOf('fed:1', 10)),
      signature: new Uint8Array(3),
    });
    await site.session.receive('secagg.nope', {});
    expect(site.sent).toEqual([]);
    expect(site.logs).toEqual([
      'ignored a malformed message from the coordinator',
      'ignored a message the coordinator does not send',
    ]);
  });

  it.each(['idle', ...STEPS.map(([s]) => s), 'failed'] as ParticipantState[])(
    'takes a new round start in %s, ending a round in progress',
    async (state) => {
      const sites = SITE_KEYS.map((kp) => new Site(kp));
      if (state === 'failed') sites[0].trainError = new Error('out of memory');
      const round = new InMemoryRound(configOf('fed:1', 10), sites);
      const k = STEPS.findIndex(([s]) => s === state);
      for (const [, step] of STEPS.slice(0, state === 'failed' ? 1 : k + 1)) await step(round);
      if (state === 'failed') await until('failed', () => sites[0].session.state === 'failed');
      expect(sites[0].session.state).toBe(state);
      const previousTraining = sites[0].cancelled;

      await sites[0].session.receive('round.start', signedStart(configOf('fed:2', 10)));

      expect(sites[0].session.roundId).toBe('fed:2');
      expect(sites[0].session.state).toBe('keys-advertised');
      const ended = sites[0].events.filter(
        (e) => e.type === 'state' && e.roundId === 'fed:1' && e.state === 'failed',
      );
      const inProgress = [
        'keys-advertised',
        'shares-sent',
        'masked-input-sent',
        'consistency-signed',
      ].includes(state);
      expect(ended).toEqual(
        inProgress
          ? [
              {
                type: 'state',
                roundId: 'fed:1',
                state: 'failed',
                reason: 'the coordinator started another round',
              },
            ]
          : state === 'failed'
            ? [{ type: 'state', roundId: 'fed:1', state: 'failed', reason: 'out of memory' }]
            : [],
      );
      if (state !== 'idle') expect(previousTraining()).toBe(true);
    },
  );
});

describe('ParticipantSession round starts', () => {
  const declined = async (start: RoundStart, opts: SiteOptions = {}) => {
    const site = new Site(SITE_KEYS[0], opts);
    await site.session.receive('round.start', start);
    expect(site.session.state).toBe('idle');
    expect(site.stageMessages()).toEqual(['round.reply']);
    expect(site.events).toEqual([
      { type: 'declined', roundId: start.secAgg.roundId, reason: expect.any(String) },
    ]);
    return parseMessage('round.reply', site.last('round.reply'));
  };

  it('declines a start whose signature is corrupted', async () => {
    const start = signedStart(configOf('fed:1', 10));
    const signature = new Uint8Array(start.signature);
    signature[5] ^= 1;
    expect(await declined({ ...start, signature })).toEqual({
      roundId: 'fed:1',
      accept: false,
      reason: 'round start not signed by the coordinator key pinned at enrollment',
    });
  });

  it('declines a start signed by another key than the pinned one', async () => {
    const reply = await declined(signedStart(configOf('fed:1', 10), keyOf(101).secretKey));
    expect(reply.reason).toBe('round start not signed by the coordinator key pinned at enrollment');
  });

  it('declines a signed start whose other fields were changed (the plan, the model size)', async () => {
    const start = signedStart(configOf('fed:1', 10));
    expect((await declined({ ...start, plan: { ...start.plan, localSteps: 5000 } })).reason).toMatch(
      /not signed/,
    );
    expect((await declined({ ...start, modelBytes: 1 })).reason).toMatch(/not signed/);
  });

  it('declines a signed start whose plan has a setting this version does not know, naming it', async () => {
    const start = signedStart(configOf('fed:1', 10), COORDINATOR.secretKey, { futureSetting: 0.5 });
    // Parsed as the session receives it: the unknown setting is kept, so the signature verifies.
    const received = parseMessage('round.start', start);
    expect(received.plan).toHaveProperty('futureSetting', 0.5);
    expect((await declined(received)).reason).toBe(
      "the round's plan has settings this agent does not know (futureSetting): upgrade the agent to take part",
    );
    // The same plan signed by another key is declined for its signature, not as a newer version.
    const forged = signedStart(configOf('fed:1', 10), keyOf(101).secretKey, { futureSetting: 0.5 });
    expect((await declined(forged)).reason).toMatch(/not signed/);
    // Every setting this version knows is taken.
    const known = signedStart(configOf('fed:1', 10), COORDINATOR.secretKey, {
      localEma: 0.9,
      keepOptimizer: true,
    });
    const site = new Site(SITE_KEYS[0]);
    await site.session.receive('round.start', parseMessage('round.start', known));
    expect(parseMessage('round.reply', site.sent[0].payload)).toEqual({ roundId: 'fed:1', accept: true });
  });

  it('takes a signed start whose task sets the MR scale; declines one whose task has a setting it does not know', async () => {
    const withTask = (task: Record<string, unknown>) => {
      const { signature: _, ...start } = signedStart(configOf('fed:1', 10));
      const changed = { ...start, task: { ...start.task, ...task } };
      return parseMessage('round.start', {
        ...changed,
        signature: nacl.sign.detached(
          roundStartPayload(sessionId(changed.secAgg), changed),
          COORDINATOR.secretKey,
        ),
      });
    };
    const site = new Site(SITE_KEYS[0]);
    const landmarks = withTask({ mrScale: 'landmarks' });
    expect(landmarks.task).toEqual({ sources: ['mr'], target: 'ct', context: 0, mrScale: 'landmarks' });
    await site.session.receive('round.start', landmarks);
    expect(parseMessage('round.reply', site.sent[0].payload)).toEqual({ roundId: 'fed:1', accept: true });
    expect((await declined(withTask({ bandwidth: 3 }))).reason).toBe(
      "the round's task has settings this agent does not know (bandwidth): upgrade the agent to take part",
    );
    expect(() =>
      parseMessage('round.start', { ...landmarks, task: { ...landmarks.task, mrScale: 'z' } }),
    ).toThrow(/mrScale/);
  });

  it('declines a start without this site', async () => {
    const others = [5, 6, 7].map(keyOf);
    const reply = await declined(signedStart(configOf('fed:1', 10, others)));
    expect(reply.reason).toBe('this site is not among the round participants');
  });

  it('declines a start with secure-aggregation parameters the client refuses', async () => {
    const reply = await declined(signedStart(configOf('fed:1', 10, SITE_KEYS, 2)));
    expect(reply.reason).toMatch(
      /^invalid secure-aggregation parameters: threshold 2 is below the majority bound/,
    );
  });

  it("declines with the site's own reason, and takes part when the policy allows", async () => {
    const reply = await declined(signedStart(configOf('fed:1', 10)), {
      session: { decline: () => 'the site has opted out of training' },
    });
    expect(reply.reason).toBe('the site has opted out of training');
    const site = new Site(SITE_KEYS[0], { session: { decline: () => null } });
    await site.session.receive('round.start', signedStart(configOf('fed:1', 10)));
    expect(parseMessage('round.reply', site.sent[0].payload)).toEqual({ roundId: 'fed:1', accept: true });
  });

  it('keeps the round in progress when it declines another start', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    await round.shareKeys();
    await sites[0].session.receive('round.start', signedStart(configOf('fed:2', 10), keyOf(101).secretKey));
    expect(sites[0].session.roundId).toBe('fed:1');
    expect(sites[0].session.state).toBe('shares-sent');
    for (const [, step] of STEPS.slice(2)) await step(round);
    expect(sites[0].session.state).toBe('done');
  });

  it('takes every start unchecked when no coordinator key is pinned (protocol tests)', async () => {
    const site = new Site(SITE_KEYS[0], { session: { coordinatorKey: null } });
    await site.session.receive('round.start', signedStart(configOf('fed:1', 10), keyOf(101).secretKey));
    expect(site.session.state).toBe('keys-advertised');
  });
});

describe('ParticipantSession model download and training', () => {
  async function accepted(site: Site): Promise<void> {
    await site.session.receive('round.start', signedStart(configOf('fed:1', 10)));
  }

  it('resumes the download from the bytes it has after a reconnect', async () => {
    const site = new Site(SITE_KEYS[0]);
    site.chunkSize = 100;
    site.cutAfter = 3;
    await accepted(site);
    await until('three chunks', () => site.session.downloading[0]?.offset === 300);
    await site.session.receive('auth.ok', { siteId: 's1', siteName: 'h1', federationId: 'fed' });
    await until('the model', () => site.trainedOn.length === 1);
    expect(site.sent.filter((s) => s.event === 'blob.request').map((s) => s.payload)).toEqual([
      { sha256: sha256Hex(MODEL), offset: 0 },
      { sha256: sha256Hex(MODEL), offset: 300 },
    ]);
    expect(Buffer.from(site.trainedOn[0]).equals(Buffer.from(MODEL))).toBe(true);
    // The reconnect ended the round in progress (the coordinator saw this site leave).
    expect(site.events.at(-1)).toMatchObject({
      state: 'failed',
      reason: 'the connection was lost during the round',
    });
    expect(site.session.downloading).toEqual([]);
  });

  it('refuses a model that does not hash to its sha256 and drops out with train.failed', async () => {
    const site = new Site(SITE_KEYS[0]);
    site.tamper = (b) => {
      const t = new Uint8Array(b);
      t[500] ^= 0xff;
      return t;
    };
    await accepted(site);
    await until('train.failed', () => site.last('train.failed') !== undefined);
    expect(parseMessage('train.failed', site.last('train.failed')).reason).toMatch(
      new RegExp(`sha256 [0-9a-f]{64} differs from the announced ${sha256Hex(MODEL)}`),
    );
    expect(site.trainedOn).toEqual([]);
    expect(site.session.state).toBe('failed');
  });

  it('refuses a chunk that does not fit the announced size', async () => {
    const site = new Site(SITE_KEYS[0]);
    await accepted(site);
    await site.session.receive('blob.chunk', {
      transferId: sha256Hex(MODEL),
      offset: 0,
      total: 5000,
      data: new Uint8Array(10),
    });
    await until('train.failed', () => site.last('train.failed') !== undefined);
    expect(parseMessage('train.failed', site.last('train.failed')).reason).toMatch(
      /5000 bytes, 1000 were announced/,
    );
  });

  it('ends the download when the coordinator refuses the model', async () => {
    const site = new Site(SITE_KEYS[0]);
    const unknown = signedStart({ ...configOf('fed:1', 10), modelHash: 'e'.repeat(64) });
    await site.session.receive('round.start', unknown);
    await until('train.failed', () => site.last('train.failed') !== undefined);
    expect(parseMessage('train.failed', site.last('train.failed'))).toEqual({
      roundId: 'fed:1',
      reason: `the coordinator refused model ${'e'.repeat(64)}: NOT_FOUND: no such model`,
    });
    expect(site.session.downloading).toEqual([]);
  });

  it('sends train.failed when training throws, and nothing more for that round', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    sites[0].trainError = new Error('no subjects left in the data folder');
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    await round.begin();
    await until('train.failed', () => sites[0].last('train.failed') !== undefined);
    expect(parseMessage('train.failed', sites[0].last('train.failed'))).toEqual({
      roundId: 'fed:1',
      reason: 'no subjects left in the data folder',
    });
    expect(sites[0].session.state).toBe('failed');
    await round.shareKeys();
    expect(sites[0].stageMessages()).toEqual(['round.reply', 'secagg.advertise', 'train.failed']);
    // The three others finish the round.
    await round.maskedInput();
    await round.consistency();
    await round.unmask();
    await round.evaluate();
    expect(round.result!.survivors).toEqual([2, 3, 4]);
  });

  it('sends train.failed for an update of the wrong length', async () => {
    const site = new Site(SITE_KEYS[0], { delta: new Float32Array(9) });
    await accepted(site);
    await until('train.failed', () => site.last('train.failed') !== undefined);
    expect(parseMessage('train.failed', site.last('train.failed')).reason).toBe(
      'the update has 9 values; the round expects 10',
    );
  });

  it('reads models from its store when their hash matches, and fetches (and stores) them otherwise', async () => {
    const stored = new Map<string, Uint8Array>();
    const models: ModelStore = {
      load: async (sha) => stored.get(sha) ?? null,
      save: async (sha, bytes) => {
        stored.set(sha, bytes);
      },
    };
    const first = new Site(SITE_KEYS[0], { session: { models } });
    await accepted(first);
    await until('the model', () => first.trainedOn.length === 1);
    expect(stored.get(sha256Hex(MODEL))).toEqual(MODEL);
    const second = new Site(SITE_KEYS[0], { session: { models } });
    await accepted(second);
    await until('the model', () => second.trainedOn.length === 1);
    expect(second.sent.some((s) => s.event === 'blob.request')).toBe(false);
    stored.set(sha256Hex(MODEL), new Uint8Array(MODEL.length)); // corrupted on disk
    const third = new Site(SITE_KEYS[0], { session: { models } });
    await accepted(third);
    await until('the model', () => third.trainedOn.length === 1);
    expect(third.trainedOn[0]).toEqual(MODEL);
    expect(third.sent.filter((s) => s.event === 'blob.request')).toHaveLength(1);
  });

  it('keeps evaluating across a reconnect, resuming the new model download', async () => {
    const sites = SITE_KEYS.map((kp) => new Site(kp));
    const round = new InMemoryRound(configOf('fed:1', 10), sites);
    for (const [, step] of STEPS.slice(0, 5)) await step(round);
    sites[0].chunkSize = 100;
    sites[0].cutAfter = 2;
    const evaluation = round.evaluate();
    await until('two chunks', () => sites[0].session.downloading[0]?.offset === 200);
    await sites[0].session.receive('auth.ok', { siteId: 's1', siteName: 'h1', federationId: 'fed' });
    await evaluation;
    expect(sites[0].session.state).toBe('done');
    expect(parseMessage('round.eval-report', sites[0].last('round.eval-report')).modelHash).toBe(
      sha256Hex(NEW_MODEL),
    );
    expect(sites[0].sent.filter((s) => s.event === 'blob.request').map((s) => s.payload)).toContainEqual({
      sha256: sha256Hex(NEW_MODEL),
      offset: 200,
    });
  });
});
