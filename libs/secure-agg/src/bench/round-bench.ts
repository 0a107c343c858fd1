/**
 * Simulates one whole secure-aggregation round in one process — every client and the server run
 * the real code, one client at a time so that memory stays O(model) — and prints, last, one JSON
 * object with the timings, traffic and an exactness check against the plain sum of the encodings.
 *
 *   npm run bench -w @fedsynth/secure-agg -- --sites 20 --params 10000000 --dropout 0.1
 *   npm run bench -w @fedsynth/secure-agg -- --sites 200 --params 1000000 --dropout 0.1 --graph harary --neighbours 17
 *
 * Dropouts stop answering after sharing keys (before their masked input): the costliest case for
 * the server, which must reconstruct their mask keys and remove their pairwise masks.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SecAggClient } from '../client';
import type { MaskedChunk } from '../messages';
import { defaultThreshold, groupSize, type NeighbourGraph, type RoundConfig } from '../params';
import { Prg } from '../prg';
import { encodeInput } from '../quantize';
import { SecAggServer } from '../server';
import { makeConfig, makeSites, seededRandom } from '../testing/simulate-round';

const HELP = `Usage: npm run bench -w @fedsynth/secure-agg -- [flags]
  --sites N          number of sites (default 20)
  --params D         model parameters per site (default 10000000)
  --dropout F        fraction of sites that drop after sharing keys (default 0.1)
  --graph G          complete | harary (default complete)
  --neighbours K     neighbours per site for harary (odd K needs an even number of sites; default 16)
  --threshold-model  active | honest-but-curious (default active)`;

function parse() {
  const { values } = parseArgs({
    options: {
      sites: { type: 'string', default: '20' },
      params: { type: 'string', default: '10000000' },
      dropout: { type: 'string', default: '0.1' },
      graph: { type: 'string', default: 'complete' },
      neighbours: { type: 'string', default: '16' },
      'threshold-model': { type: 'string', default: 'active' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const num = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) {
      console.error(`--${name}: "${v}" must be a number >= ${min}\n${HELP}`);
      process.exit(2);
    }
    return n;
  };
  const graph = values.graph;
  if (graph !== 'complete' && graph !== 'harary') {
    console.error(`--graph: "${graph}" must be complete or harary`);
    process.exit(2);
  }
  return {
    sites: num('sites', values.sites!, 3),
    params: num('params', values.params!, 1),
    dropout: num('dropout', values.dropout!, 0),
    graph,
    neighbours: num('neighbours', values.neighbours!, 2),
    model:
      values['threshold-model'] === 'honest-but-curious'
        ? ('honest-but-curious' as const)
        : ('active' as const),
  };
}

function rawPrgMBps(): number {
  const zero = Buffer.alloc(1 << 20);
  const c = createCipheriv('aes-256-ctr', randomBytes(32), Buffer.alloc(16));
  for (let i = 0; i < 32; i++) c.update(zero);
  const t = process.hrtime.bigint();
  const mib = 512;
  for (let i = 0; i < mib; i++) c.update(zero);
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  return (mib * 1.048576) / s;
}

function fillInput(values: Float32Array, seed: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < values.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    values[i] = ((x >>> 0) / 4294967296 - 0.5) * 0.02;
  }
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function main(): void {
  const opt = parse();
  const prgMBps = rawPrgMBps();
  const sites = makeSites(opt.sites, 'bench');
  let graph: NeighbourGraph = { kind: 'complete' };
  if (opt.graph === 'harary') {
    graph = { kind: 'harary', neighbours: opt.neighbours, seed: seededRandom('bench-graph')(32) };
  }
  const quantization = { clip: 0.05, levels: 2 ** 16, maxWeight: 10_000 };
  const probe = { participants: sites.map((s) => s.participant), graph };
  const threshold = defaultThreshold(groupSize(probe), opt.model);
  const config: RoundConfig = makeConfig(sites, {
    threshold,
    graph,
    vectorLength: opt.params,
    quantization,
    roundId: 'bench:1',
  });
  const dropCount = Math.round(opt.sites * opt.dropout);
  const dropped = new Set(
    Array.from({ length: dropCount }, (_, j) => Math.floor((j * opt.sites) / dropCount) + 1),
  );

  const clientMs = new Map<number, number>();
  const sent = new Map<number, number>();
  const addClient = (i: number, t: number, bytes: number) => {
    clientMs.set(i, (clientMs.get(i) ?? 0) + t);
    sent.set(i, (sent.get(i) ?? 0) + bytes);
  };
  let serverMs = 0;
  const server = new SecAggServer(config);
  const clients = new Map<number, SecAggClient>();
  for (const s of sites) {
    const i = s.participant.index;
    const t = process.hrtime.bigint();
    clients.set(
      i,
      new SecAggClient({
        config,
        selfIndex: i,
        identitySecretKey: s.secretKey,
        roundingSeed: seededRandom(`round-${i}`)(32),
      }),
    );
    addClient(i, ms(t), 0);
  }
  Prg.elementsDrawn = 0;
  for (const [i, c] of clients) {
    let t = process.hrtime.bigint();
    const ad = c.advertiseKeys();
    addClient(i, ms(t), 32 + 32 + 64 + 8);
    t = process.hrtime.bigint();
    server.receiveAdvertise(ad);
    serverMs += ms(t);
  }
  let t0 = process.hrtime.bigint();
  const rosters = server.closeAdvertise();
  serverMs += ms(t0);
  for (const [i, roster] of rosters) {
    const t = process.hrtime.bigint();
    const msg = clients.get(i)!.shareKeys(roster);
    addClient(
      i,
      ms(t),
      msg.shares.reduce((a, s) => a + 4 + s.ciphertext.length, 8),
    );
    const t2 = process.hrtime.bigint();
    server.receiveShares(msg);
    serverMs += ms(t2);
  }
  t0 = process.hrtime.bigint();
  const inboxes = server.closeShareKeys();
  serverMs += ms(t0);
  const plain = new Uint32Array(opt.params + 1);
  const values = new Float32Array(opt.params);
  for (const [i, inbox] of inboxes) {
    if (dropped.has(i)) continue;
    fillInput(values, i);
    const weight = 100 + i;
    const enc = encodeInput(
      values,
      weight / quantization.maxWeight,
      quantization,
      new Prg(seededRandom(`round-${i}`)(32)),
    );
    for (let j = 0; j < plain.length; j++) plain[j] += enc[j];
    let t = process.hrtime.bigint();
    const stream = clients.get(i)!.maskedInput(inbox, { values, weight })[Symbol.iterator]();
    addClient(i, ms(t), 0);
    for (;;) {
      t = process.hrtime.bigint();
      const next = stream.next();
      addClient(i, ms(t), next.done ? 0 : (next.value as MaskedChunk).data.byteLength + 8);
      if (next.done) break;
      const { offset, data } = next.value as MaskedChunk;
      t = process.hrtime.bigint();
      server.receiveMaskedChunk(i, offset, data);
      serverMs += ms(t);
    }
    t = process.hrtime.bigint();
    server.completeMaskedInput(i);
    serverMs += ms(t);
  }
  // encodeInput above re-drew each survivor's rounding stream outside the protocol: discount it.
  const verifyDraws = (opt.params + 1) * (opt.sites - dropCount);
  t0 = process.hrtime.bigint();
  const lists = server.closeMaskedInput();
  serverMs += ms(t0);
  for (const [i, list] of lists) {
    const t = process.hrtime.bigint();
    const sig = clients.get(i)!.consistencyCheck(list);
    addClient(i, ms(t), 64 + 8);
    const t2 = process.hrtime.bigint();
    server.receiveConsistency(sig);
    serverMs += ms(t2);
  }
  t0 = process.hrtime.bigint();
  const checks = server.closeConsistency();
  serverMs += ms(t0);
  for (const [i, check] of checks) {
    const t = process.hrtime.bigint();
    const un = clients.get(i)!.unmask(check);
    addClient(i, ms(t), (un.selfMaskShares.length + un.maskKeyShares.length) * (4 + 66) + 8);
    const t2 = process.hrtime.bigint();
    server.receiveUnmask(un);
    serverMs += ms(t2);
  }
  t0 = process.hrtime.bigint();
  const result = server.finalize();
  serverMs += ms(t0);

  const survivorsMs = [...clientMs].filter(([i]) => !dropped.has(i)).map(([, v]) => v);
  const protocolElements = Prg.elementsDrawn - verifyDraws;
  const maskElements = protocolElements - verifyDraws; // minus the clients' own rounding draws
  const totalMs = survivorsMs.reduce((a, b) => a + b, 0) + serverMs;
  const survivorBytes = [...sent].filter(([i]) => !dropped.has(i)).map(([, v]) => v);
  const bytesPerClient = Math.round(survivorBytes.reduce((a, b) => a + b, 0) / survivorBytes.length);
  const plainBytesPerClient = opt.params * 4;
  const out = {
    sites: opt.sites,
    params: opt.params,
    graph: opt.graph,
    neighbours: graph.kind === 'harary' ? graph.neighbours : opt.sites - 1,
    threshold,
    dropped: dropCount,
    clientMsMedian: Math.round(median(survivorsMs)),
    clientMsMax: Math.round(Math.max(...survivorsMs)),
    serverMs: Math.round(serverMs),
    maskBytesGenerated: maskElements * 4,
    prgMBps: Math.round(prgMBps),
    prgEfficiency: Number(((protocolElements * 4) / 1e6 / prgMBps / (totalMs / 1000)).toFixed(3)),
    bytesPerClient,
    plainBytesPerClient,
    expansion: Number((bytesPerClient / plainBytesPerClient).toFixed(4)),
    exact: Buffer.from(result.sum.buffer).equals(Buffer.from(plain.buffer)),
    peakRssMB: Math.round(process.memoryUsage().rss / 1e6),
  };
  console.log(JSON.stringify(out));
}

main();
