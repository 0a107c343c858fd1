import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors';
import { groupSize, type RoundConfig, type SecAggStage, STAGES } from './params';
import { Prg } from './prg';
import { encodeInput } from './quantize';
import { makeConfig, makeSites, seededRandom, simulateRound } from './testing/simulate-round';

const Q = { clip: 1, levels: 2 ** 16, maxWeight: 1000 };

/** Arbitrary round shape: sizes, threshold, graph and a drop plan that may or may not leave t survivors. */
const roundArb = fc
  .record({
    n: fc.integer({ min: 3, max: 30 }),
    length: fc.integer({ min: 1, max: 200 }),
    harary: fc.boolean(),
    kHalf: fc.integer({ min: 1, max: 6 }),
    tSlack: fc.nat(30),
    seed: fc.integer(),
    dropRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
  })
  .map((r) => ({ ...r, k: 2 * r.kHalf }));

function buildRound(r: {
  n: number;
  length: number;
  harary: boolean;
  k: number;
  tSlack: number;
  seed: number;
}) {
  const sites = makeSites(r.n, `prop-${r.seed}`);
  const graph =
    r.harary && r.k < r.n - 1
      ? { kind: 'harary' as const, neighbours: r.k, seed: seededRandom(`g${r.seed}`)(32) }
      : { kind: 'complete' as const };
  const probe = { participants: sites.map((s) => s.participant), graph };
  const m = groupSize(probe);
  const minT = Math.floor(m / 2) + 1;
  const threshold = minT + (r.tSlack % (m - minT + 1));
  const config = makeConfig(sites, {
    threshold,
    graph,
    vectorLength: r.length,
    quantization: Q,
    roundId: `round-${r.seed}`,
  });
  return { sites, config };
}

function inputsFor(config: RoundConfig, seed: number) {
  const rnd = seededRandom(`inputs-${seed}`);
  const inputs = new Map<number, { values: Float32Array; weight: number }>();
  for (const p of config.participants) {
    const bytes = rnd(config.vectorLength * 4);
    const values = new Float32Array(config.vectorLength);
    for (let i = 0; i < values.length; i++)
      values[i] = ((bytes[4 * i] | (bytes[4 * i + 1] << 8)) / 65535) * 3 - 1.5; // some beyond the clip
    inputs.set(p.index, { values, weight: 1 + (bytes[2] % 200) });
  }
  return inputs;
}

describe('secure aggregation round (property)', () => {
  it('unmasks exactly the plain sum of the encoded inputs, whatever drops out where, or fails below threshold', () => {
    fc.assert(
      fc.property(roundArb, (r) => {
        const { sites, config } = buildRound(r);
        const inputs = inputsFor(config, r.seed);
        const pick = seededRandom(`drops-${r.seed}`);
        const drops = new Map<number, SecAggStage>();
        const partial = new Set<number>();
        for (const p of config.participants) {
          const b = pick(2);
          if (b[0] / 255 < r.dropRate) {
            const stage = STAGES[b[1] % STAGES.length];
            drops.set(p.index, stage);
            if (stage === 'masked-input' && b[1] % 2 === 0) partial.add(p.index);
          }
        }
        const roundingSeeds = new Map(
          config.participants.map((p) => [p.index, seededRandom(`rs-${r.seed}-${p.index}`)(32)]),
        );
        let outcome: ReturnType<typeof simulateRound>;
        try {
          outcome = simulateRound({
            config,
            sites,
            inputs,
            drops,
            partialUpload: partial,
            seed: `s${r.seed}`,
            roundingSeeds,
          });
        } catch (err) {
          // Only a shortfall of survivors may stop a round, and it must say so.
          expect(err).toBeInstanceOf(SecAggError);
          expect((err as SecAggError).code).toBe('BELOW_THRESHOLD');
          return;
        }
        const { result } = outcome;
        // Sites that delivered a complete masked vector are summed, whatever happened to them later.
        const expectedSurvivors = config.participants
          .map((p) => p.index)
          .filter((i) => {
            const d = drops.get(i);
            return d === undefined || d === 'consistency-check' || d === 'unmask';
          });
        expect(result.survivors).toEqual(expectedSurvivors);
        const plain = new Uint32Array(config.vectorLength + 1);
        for (const i of expectedSurvivors) {
          const inp = inputs.get(i)!;
          const enc = encodeInput(inp.values, inp.weight / Q.maxWeight, Q, new Prg(roundingSeeds.get(i)!));
          for (let j = 0; j < plain.length; j++) plain[j] += enc[j];
        }
        expect(Buffer.from(result.sum.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
        // And the decoded mean is within the documented bound of the float weighted mean.
        let wsum = 0;
        for (const i of expectedSurvivors) wsum += inputs.get(i)!.weight;
        for (let j = 0; j < config.vectorLength; j++) {
          let acc = 0;
          for (const i of expectedSurvivors) {
            const { values, weight } = inputs.get(i)!;
            acc += weight * Math.max(-Q.clip, Math.min(Q.clip, values[j]));
          }
          expect(Math.abs(result.mean[j] - acc / wsum)).toBeLessThanOrEqual(result.errorBound + 1e-6);
        }
        expect(Math.abs(result.weightSum - wsum)).toBeLessThanOrEqual(
          (expectedSurvivors.length * Q.maxWeight) / (Q.levels - 1),
        );
        for (const d of result.dropouts) expect(drops.get(d.index)).toBe(d.stage);
      }),
      { seed: 20261124, numRuns: 60 },
    );
  });

  it('completes with the honest-but-curious threshold when one of three sites drops after sharing keys', () => {
    const sites = makeSites(3, 'small');
    const config = makeConfig(sites, { threshold: 2, vectorLength: 10, quantization: Q });
    const inputs = inputsFor(config, 3);
    const { result } = simulateRound({ config, sites, inputs, drops: new Map([[2, 'masked-input']]) });
    expect(result.survivors).toEqual([1, 3]);
    expect(result.dropouts).toEqual([{ index: 2, stage: 'masked-input' }]);
  });

  it('fails with BELOW_THRESHOLD, naming the stage, when too few sites survive', () => {
    const sites = makeSites(4, 'few');
    const config = makeConfig(sites, { threshold: 3, vectorLength: 5, quantization: Q });
    const inputs = inputsFor(config, 4);
    expect(() =>
      simulateRound({
        config,
        sites,
        inputs,
        drops: new Map<number, SecAggStage>([
          [1, 'share-keys'],
          [2, 'masked-input'],
        ]),
      }),
    ).toThrow(/only 2 sites completed masked-input; the threshold is 3/);
  });
});
