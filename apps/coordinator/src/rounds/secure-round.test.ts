import { createHash } from 'node:crypto';
import { ParticipantSession, type ParticipantTransport } from '@fedsynth/protocol';
import { defaultThreshold, groupSize, type RoundConfig } from '@fedsynth/secure-agg';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from './memory-transport';
import { SecureRound } from './secure-round';

/**
 * Protocol-level rounds with no sockets and no database: real participant sessions (libs/protocol)
 * and the coordinator's SecureRound over the in-memory transport.
 */
const N = 6;
const D = 5000;
const model = new Uint8Array(64).fill(3);
const sha = createHash('sha256').update(model).digest('hex');
const next = new Uint8Array(64).fill(4);
const nextSha = createHash('sha256').update(next).digest('hex');
const deltaOf = (k: number) => Float32Array.from({ length: D }, (_, i) => 0.01 * Math.sin(i * 0.1 + k));
const weightOf = (k: number) => 10 * (k + 1);

async function run(graph: RoundConfig['graph'], opts: { dropAfterShares?: number; failing?: number } = {}) {
  const { dropAfterShares, failing } = opts;
  const keys = Array.from({ length: N }, (_, k) =>
    nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(k + 1)),
  );
  const participants = keys.map((kp, k) => ({
    index: k + 1,
    siteId: `site-${k + 1}`,
    identityKey: kp.publicKey,
  }));
  const config: RoundConfig = {
    roundId: 'fed:0',
    modelHash: sha,
    participants,
    threshold: defaultThreshold(groupSize({ participants, graph }), 'honest-but-curious'),
    graph,
    vectorLength: D,
    quantization: { clip: 0.05, levels: 65536, maxWeight: 1000 },
  };
  const transport = new MemoryTransport(
    new Map([
      [sha, model],
      [nextSha, next],
    ]),
  );
  const stages: string[] = [];
  const round = new SecureRound({
    config,
    transport,
    stageTimeoutMs: 2000,
    trainTimeoutMs: 4000,
    maxConcurrentUploads: 2,
    onStage: async (s) => {
      stages.push(s);
    },
    revokedNow: async () => [],
    nameOf: (i) => `site-${i}`,
  });
  transport.attach(round);
  keys.forEach((kp, k) => {
    const index = k + 1;
    const side = transport.participantSide(index);
    // A site that drops once its key shares are sent.
    const link: ParticipantTransport =
      index === dropAfterShares
        ? {
            send: (event, payload) => {
              side.send(event, payload);
              if (event === 'secagg.shares') setImmediate(() => transport.cut(index));
            },
            sendWithAck: side.sendWithAck,
          }
        : side;
    transport.join(
      index,
      new ParticipantSession({
        identity: kp,
        coordinatorKey: null,
        agentVersion: 'test',
        transport: link,
        train: async (_start, fetch) => {
          await fetch();
          if (index === failing) throw new Error('the data folder is gone');
          return { delta: deltaOf(k), weight: weightOf(k), report: { loss: 0.1, steps: 5, epsilon: null } };
        },
        evaluate: async () => ({ mae: 50 + k, psnr: 30, ssim: 0.9, count: 10 }),
      }),
    );
  });
  const start = {
    federationId: 'fed',
    roundNumber: 0,
    task: { sources: ['mr'], target: 'ct', context: 0 },
    secAgg: config,
    modelBytes: model.length,
    plan: {
      localSteps: 5,
      batchSize: 2,
      lr: 1e-3,
      size: 16,
      prediction: 'sample' as const,
      schedule: 'cosine' as const,
      fedProxMu: 0,
      dp: { clip: 10, noiseMultiplier: 0, delta: 1e-5 },
    },
    deadlines: {},
    signature: new Uint8Array(64),
  };
  const t0 = performance.now();
  const aggregating = round.aggregate();
  for (const p of participants) transport.send(p.index, 'round.start', start);
  const result = await aggregating;
  await round.evaluate(result.survivors, nextSha, next.length);
  return { result, round, stages, ms: performance.now() - t0 };
}

describe('SecureRound over the in-memory transport', () => {
  it('aggregates six participant sessions (SecAgg+, Harary degree 4) with one dropping after key sharing, in about a second', async () => {
    const { result, round, stages, ms } = await run(
      { kind: 'harary', neighbours: 4, seed: new Uint8Array(32).fill(9) },
      { dropAfterShares: 6 },
    );
    console.info(`in-memory round of ${N} sites x ${D} values: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(3000);
    expect(stages).toEqual(['advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmask']);
    expect(result.survivors).toEqual([1, 2, 3, 4, 5]);
    expect(result.dropouts).toEqual([{ index: 6, stage: 'masked-input' }]);
    // The weighted mean of the survivors' deltas, within the quantization bound.
    const total = [0, 1, 2, 3, 4].reduce((a, k) => a + weightOf(k), 0);
    const bound = (3 * 0.05 * 5) / (65535 * (total / 1000)) + 1e-6;
    for (let i = 0; i < D; i += 13) {
      const mean = [0, 1, 2, 3, 4].reduce((a, k) => a + weightOf(k) * deltaOf(k)[i], 0) / total;
      expect(Math.abs(result.mean[i] - mean)).toBeLessThanOrEqual(bound);
    }
    expect([...round.trainReports.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(round.evalReports.get(3)?.mae).toBe(52);
    expect(round.peakUploads).toBeLessThanOrEqual(2);
    expect(round.dropoutsOf(result)).toEqual([{ siteId: 'site-6', stage: 'masked-input' }]);
  });

  it('a site whose training fails is a dropout at once, with its reason, well before the training deadline', async () => {
    const { result, round, ms } = await run({ kind: 'complete' }, { failing: 2 });
    expect(ms).toBeLessThan(3000);
    expect(result.survivors).toEqual([1, 3, 4, 5, 6]);
    expect(round.dropoutsOf(result)).toEqual([
      { siteId: 'site-2', stage: 'share-keys', reason: 'the data folder is gone' },
    ]);
  });
});
