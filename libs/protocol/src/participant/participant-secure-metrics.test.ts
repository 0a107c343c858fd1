import { createHash } from 'node:crypto';
import {
  type AggregateResult,
  type RoundConfig,
  SecAggClient,
  SecAggServer,
  sessionId,
} from '@fedsynth/secure-agg';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../chunked';
import { type Message, parseMessage, roundStartPayload } from '../schemas';
import { chunkToUint32 } from '../secagg-messages';
import { decodeFigures, type MetricSlot, type SiteFigures, secureMetricsLayout } from '../secure-metrics';
import { type OutboundNote, ParticipantSession, type TrainingResult } from './participant-session';
import type { RoundStart } from './round-start-check';

/**
 * The site's side of a round whose start asks for the figures inside the masked vector: three
 * sessions against a real SecAggServer. What each sends (no figure in plain text, no evaluation
 * report), what the sum holds, and the round starts a site must decline.
 */
const keyOf = (i: number) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i));
const SITES = [1, 2, 3].map(keyOf);
const COORDINATOR = keyOf(100);
const MODEL = Uint8Array.from({ length: 500 }, (_, i) => (i * 13 + 1) & 255);
const N = 40; // model values
const SLOTS = secureMetricsLayout('ct');
const CLIP = 0.5;
const MAX_WEIGHT = 100;

function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32)
      out.set(
        createHash('sha256')
          .update(`${seed}/${counter++}`)
          .digest()
          .subarray(0, Math.min(32, n - o)),
        o,
      );
    return out;
  };
}

function config(slots: number): RoundConfig {
  return {
    roundId: 'fed:4',
    modelHash: sha256Hex(MODEL),
    participants: SITES.map((k, i) => ({ index: i + 1, siteId: `s${i + 1}`, identityKey: k.publicKey })),
    threshold: 2,
    graph: { kind: 'complete' },
    vectorLength: N + slots,
    quantization: { clip: CLIP, levels: 65536, maxWeight: MAX_WEIGHT },
  };
}

/** A round start signed by the coordinator over `metrics`; `sent` replaces the slots after signing. */
function start(c: RoundConfig, metrics: MetricSlot[] | undefined, sent = metrics): RoundStart {
  const body = {
    federationId: 'fed',
    roundNumber: 4,
    task: { sources: ['mr'], target: 'ct', context: 0 },
    secAgg: c,
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
    },
    deadlines: {},
  };
  const signed = metrics ? { ...body, metrics } : body;
  const signature = nacl.sign.detached(roundStartPayload(sessionId(c), signed), COORDINATOR.secretKey);
  return { ...body, ...(sent ? { metrics: sent } : {}), signature };
}

const FIGURES: SiteFigures[] = [
  { train_loss: 0.3, mae: 150, psnr: 22, ssim: 0.6, nearest_synth: 0.2, nearest_real: 0.25 },
  { train_loss: 0.5, mae: 90, psnr: 26, ssim: 0.7, nearest_synth: 0.1, nearest_real: 0.2 },
  { train_loss: 0.1, mae: 300, psnr: 18, ssim: 0.4, nearest_synth: 0.3, nearest_real: 0.3 },
];
const WEIGHTS = [50, 20, 30];
const deltaOf = (k: number) => Float32Array.from({ length: N }, (_, i) => 0.1 * Math.cos(i + k));

class Site {
  readonly sent: { event: string; payload: unknown; note?: OutboundNote }[] = [];
  readonly logs: string[] = [];
  readonly session: ParticipantSession;

  constructor(
    kp: nacl.SignKeyPair,
    result: Omit<TrainingResult, 'report'>,
    readonly ack: (m: Message<'secagg.masked-chunk'>) => void = () => undefined,
  ) {
    this.session = new ParticipantSession({
      identity: kp,
      coordinatorKey: COORDINATOR.publicKey,
      agentVersion: 'test',
      transport: {
        send: (event, payload) => {
          this.sent.push({ event, payload });
          if (event === 'blob.request')
            setImmediate(() =>
              this.session.receive('blob.chunk', {
                transferId: sha256Hex(MODEL),
                offset: 0,
                total: MODEL.length,
                data: MODEL,
              }),
            );
        },
        sendWithAck: async (event, payload, _timeout, note) => {
          this.sent.push({ event, payload, ...(note ? { note } : {}) });
          this.ack(payload as Message<'secagg.masked-chunk'>);
        },
      },
      train: async (_s, model) => {
        await model();
        return { ...result, report: { loss: result.figures?.train_loss ?? 0.2, steps: 5, epsilon: 0.7 } };
      },
      evaluate: async () => ({ mae: 1, psnr: 1, ssim: 1, count: 1 }),
      log: {
        info: (m) => this.logs.push(m),
        warn: (m) => this.logs.push(m),
        error: (m) => this.logs.push(m),
      },
      createClient: (o) => new SecAggClient({ ...o, random: seededRandom(`${o.selfIndex}`) }),
    });
  }

  events(): string[] {
    return this.sent.map((s) => s.event).filter((e) => e !== 'blob.request');
  }

  last(event: string): unknown {
    return this.sent.filter((s) => s.event === event).at(-1)?.payload;
  }
}

const tick = () => new Promise((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await tick();
}

/** Runs the whole round through a real server and returns its result. */
async function runRound(sites: Site[], server: SecAggServer, s: RoundStart): Promise<AggregateResult> {
  for (const site of sites) await site.session.receive('round.start', s);
  for (const site of sites)
    server.receiveAdvertise(parseMessage('secagg.advertise', site.last('secagg.advertise')));
  for (const [i, roster] of server.closeAdvertise()) {
    await sites[i - 1].session.receive('secagg.roster', roster);
    server.receiveShares(parseMessage('secagg.shares', sites[i - 1].last('secagg.shares')));
  }
  await Promise.all(
    [...server.closeShareKeys()].map(([i, inbox]) => sites[i - 1].session.receive('secagg.inbox', inbox)),
  );
  for (const [i, list] of server.closeMaskedInput()) {
    await sites[i - 1].session.receive('secagg.survivors', list);
    server.receiveConsistency(parseMessage('secagg.consistency', sites[i - 1].last('secagg.consistency')));
  }
  for (const [i, check] of server.closeConsistency()) {
    await sites[i - 1].session.receive('secagg.consistency-result', check);
    server.receiveUnmask(parseMessage('secagg.unmask', sites[i - 1].last('secagg.unmask')));
  }
  return server.finalize();
}

function feeding(server: SecAggServer, index: number) {
  return (m: Message<'secagg.masked-chunk'>) => {
    const p = parseMessage('secagg.masked-chunk', m);
    server.receiveMaskedChunk(index, p.offset / 4, chunkToUint32(p.data));
    if (p.offset + p.data.length === p.total) server.completeMaskedInput(index);
  };
}

describe('a round with the figures inside the masked vector', () => {
  it('sends no figure in plain text; the sum holds the weighted mean of the update and of each figure', async () => {
    const c = config(SLOTS.length);
    const server = new SecAggServer(c);
    const sites = SITES.map(
      (kp, k) =>
        new Site(kp, { delta: deltaOf(k), weight: WEIGHTS[k], figures: FIGURES[k] }, feeding(server, k + 1)),
    );
    const result = await runRound(sites, server, start(c, SLOTS));
    expect(result.survivors).toEqual([1, 2, 3]);
    for (const site of sites) {
      expect(site.events()).toEqual([
        'round.reply',
        'secagg.advertise',
        'secagg.shares',
        'round.train-report',
        'secagg.masked-chunk',
        'secagg.consistency',
        'secagg.unmask',
      ]);
      // The report says the site trained, and nothing it measured.
      expect(parseMessage('round.train-report', site.last('round.train-report'))).toEqual({
        roundId: 'fed:4',
        steps: 5,
      });
      // The chunk that carries the slots names them for the audit log.
      expect(site.sent.find((s) => s.event === 'secagg.masked-chunk')?.note).toEqual({
        inside: SLOTS.map((s) => s.name),
      });
    }
    // The model part: the weighted mean of the deltas, within secure aggregation's bound.
    const total = WEIGHTS.reduce((a, w) => a + w, 0);
    for (let i = 0; i < N; i++) {
      const want = WEIGHTS.reduce((a, w, k) => a + w * deltaOf(k)[i], 0) / total;
      expect(Math.abs(result.mean[i] - want)).toBeLessThanOrEqual(result.errorBound);
    }
    // The figure part: each figure's weighted mean within 1.5 (hi - lo) |S| / ((Q - 1) B) (plus
    // float32's 2^-23 of the range), B = 100 / 100 here; twice that for a group figure (share 1).
    const out = decodeFigures(SLOTS, result.mean.subarray(N), CLIP, result.errorBound);
    const e = (range: number) => (1.5 * range * 3) / (65535 * (1 - 3 / 65535)) + range * 2 ** -23;
    for (const s of SLOTS) {
      if (s.name === 'evaluated' || s.name === 'nearest_checked') continue;
      const name = s.name as keyof SiteFigures;
      const want = FIGURES.reduce((a, f, k) => a + WEIGHTS[k] * f[name]!, 0) / total;
      const tol = name === 'train_loss' ? e(s.hi - s.lo) : (e(s.hi - s.lo) + s.hi * e(1)) / (1 - e(1));
      expect(Math.abs(out.get(name)!.value - want), name).toBeLessThanOrEqual(tol);
    }
  });

  it('refuses to evaluate when asked anyway: no plain report leaves', async () => {
    const c = config(SLOTS.length);
    const server = new SecAggServer(c);
    const sites = SITES.map(
      (kp, k) => new Site(kp, { delta: deltaOf(k), weight: 10, figures: FIGURES[k] }, feeding(server, k + 1)),
    );
    await runRound(sites, server, start(c, SLOTS));
    await sites[0].session.receive('round.evaluate', {
      roundId: 'fed:4',
      modelHash: sha256Hex(MODEL),
      modelBytes: MODEL.length,
    });
    await settle();
    expect(sites[0].events()).not.toContain('round.eval-report');
    expect(sites[0].logs).toContain(
      'refused round.evaluate: this round sends its figures only inside the masked vector',
    );
    expect(sites[0].session.state).toBe('unmasked');
  });

  it('declines a round start whose figures it does not know, or whose slots were changed after signing', async () => {
    const unknown = [...SLOTS, { name: 'fid', lo: 0, hi: 100 }];
    const site = new Site(SITES[0], { delta: deltaOf(0), weight: 1, figures: FIGURES[0] });
    await site.session.receive('round.start', start(config(unknown.length), unknown));
    expect(parseMessage('round.reply', site.last('round.reply'))).toMatchObject({
      accept: false,
      reason: expect.stringMatching(/figures the round asks for.*unknown figure "fid".*upgrade the agent/),
    });
    const narrowed = SLOTS.map((s) => (s.name === 'mae' ? { ...s, hi: 10 } : s));
    await site.session.receive('round.start', start(config(SLOTS.length), SLOTS, narrowed));
    expect(parseMessage('round.reply', site.last('round.reply'))).toMatchObject({
      accept: false,
      reason: 'round start not signed by the coordinator key pinned at enrollment',
    });
  });

  it('drops out with the reason when training gives no figures, or an update of the wrong length', async () => {
    const c = config(SLOTS.length);
    const none = new Site(SITES[0], { delta: deltaOf(0), weight: 1 });
    await none.session.receive('round.start', start(c, SLOTS));
    await settle();
    expect(parseMessage('train.failed', none.last('train.failed')).reason).toMatch(
      /asks for figures in the masked vector; training gave none/,
    );
    const long = new Site(SITES[1], {
      delta: new Float32Array(N + SLOTS.length),
      weight: 1,
      figures: FIGURES[1],
    });
    await long.session.receive('round.start', start(c, SLOTS));
    await settle();
    expect(parseMessage('train.failed', long.last('train.failed')).reason).toBe(
      `the update has ${N + SLOTS.length} values; the round expects ${N} (and ${SLOTS.length} figures)`,
    );
    expect(none.events()).not.toContain('round.train-report');
  });
});
