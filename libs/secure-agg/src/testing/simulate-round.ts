import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { SecAggClient } from '../client';
import type { AggregateResult } from '../messages';
import type { NeighbourGraph, Participant, QuantizationParams, RoundConfig, SecAggStage } from '../params';
import { SecAggServer } from '../server';

/** A deterministic byte source (SHA-256 in counter mode over a seed) for reproducible rounds. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - o)), o);
    }
    return out;
  };
}

export interface SimulatedSite {
  participant: Participant;
  secretKey: Uint8Array;
}

/** Makes `n` sites with identity keys derived from `seed`, indices 1..n. */
export function makeSites(n: number, seed: string): SimulatedSite[] {
  const rnd = seededRandom(`${seed}/identities`);
  return Array.from({ length: n }, (_, i) => {
    const kp = nacl.sign.keyPair.fromSeed(rnd(32));
    return {
      participant: { index: i + 1, siteId: `site-${i + 1}`, identityKey: kp.publicKey },
      secretKey: kp.secretKey,
    };
  });
}

/** A round configuration for the given sites. */
export function makeConfig(
  sites: SimulatedSite[],
  opts: {
    threshold: number;
    graph?: NeighbourGraph;
    vectorLength: number;
    quantization: QuantizationParams;
    roundId?: string;
  },
): RoundConfig {
  return {
    roundId: opts.roundId ?? 'federation-1:round-1',
    modelHash: createHash('sha256').update('global-model').digest('hex'),
    participants: sites.map((s) => s.participant),
    threshold: opts.threshold,
    graph: opts.graph ?? { kind: 'complete' },
    vectorLength: opts.vectorLength,
    quantization: opts.quantization,
  };
}

/** Where each dropping site stops answering: it sends nothing from that stage on. */
export type DropPlan = Map<number, SecAggStage>;

/**
 * Runs one whole round in memory between real clients and a real server, with the given sites
 * dropping at the given stages. `partialUpload` sites send half of their masked vector, then stop.
 */
export function simulateRound(args: {
  config: RoundConfig;
  sites: SimulatedSite[];
  inputs: Map<number, { values: Float32Array; weight: number }>;
  drops?: DropPlan;
  partialUpload?: Set<number>;
  seed?: string;
  roundingSeeds?: Map<number, Uint8Array>;
}): { result: AggregateResult; server: SecAggServer; clients: Map<number, SecAggClient> } {
  const { config, sites, inputs } = args;
  const drops = args.drops ?? new Map();
  const seed = args.seed ?? 'round';
  const active = (i: number, stage: SecAggStage) => {
    const d = drops.get(i);
    if (!d) return true;
    const order = ['advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmask'];
    return order.indexOf(stage) < order.indexOf(d);
  };
  const server = new SecAggServer(config);
  const clients = new Map<number, SecAggClient>();
  for (const s of sites) {
    clients.set(
      s.participant.index,
      new SecAggClient({
        config,
        selfIndex: s.participant.index,
        identitySecretKey: s.secretKey,
        random: seededRandom(`${seed}/client-${s.participant.index}`),
        roundingSeed: args.roundingSeeds?.get(s.participant.index),
      }),
    );
  }
  for (const [i, c] of clients) if (active(i, 'advertise-keys')) server.receiveAdvertise(c.advertiseKeys());
  const rosters = server.closeAdvertise();
  for (const [i, roster] of rosters)
    if (active(i, 'share-keys')) server.receiveShares(clients.get(i)!.shareKeys(roster));
  const inboxes = server.closeShareKeys();
  for (const [i, inbox] of inboxes) {
    if (!active(i, 'masked-input') && !args.partialUpload?.has(i)) continue;
    const stream = clients.get(i)!.maskedInput(inbox, inputs.get(i)!);
    const partial = args.partialUpload?.has(i);
    let sent = 0;
    for (const chunk of stream) {
      if (partial && sent >= Math.ceil(stream.chunkCount / 2)) break;
      server.receiveMaskedChunk(i, chunk.offset, chunk.data);
      sent++;
    }
    if (!partial && active(i, 'masked-input')) server.completeMaskedInput(i);
  }
  const lists = server.closeMaskedInput();
  for (const [i, list] of lists)
    if (active(i, 'consistency-check')) server.receiveConsistency(clients.get(i)!.consistencyCheck(list));
  const results = server.closeConsistency();
  for (const [i, check] of results)
    if (active(i, 'unmask')) server.receiveUnmask(clients.get(i)!.unmask(check));
  return { result: server.finalize(), server, clients };
}
