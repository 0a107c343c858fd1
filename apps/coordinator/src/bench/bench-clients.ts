/**
 * The protocol-level sites of the coordinator benchmark, in their own process: each logs in with its
 * key and runs libs/protocol's ParticipantSession through a round with a synthetic update (it never
 * fetches the model: its "training" does not read it); masked vectors are uploaded one site at a
 * time with acknowledged 1 MiB chunks, so this process holds one update vector at a time. Sites in
 * --drop stop after sharing keys.
 */
import { parseArgs } from 'node:util';
import { ParticipantSession, socketParser } from '@fedsynth/protocol';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';
import { attachSession, socketTransport } from '../testing/protocol-agent';

let url = '';
let D = 0;
let drop = new Set<number>();

/** Deterministic key of site k (the benchmark's parent enrolls the same keys). */
export function benchKey(k: number): nacl.SignKeyPair {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, k + 1);
  return nacl.sign.keyPair.fromSeed(seed);
}

let queue = Promise.resolve();

/** Waits for this site's turn to hold an update vector; the returned function ends the turn. */
function nextTurn(): Promise<() => void> {
  let end: () => void = () => undefined;
  const ended = new Promise<void>((r) => {
    end = r;
  });
  const turn = queue.then(() => end);
  queue = queue.then(() => ended);
  return turn;
}

function site(k: number): Promise<Socket> {
  const kp = benchKey(k);
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false, parser: socketParser });
    const wire = socketTransport(socket);
    let endTurn: (() => void) | null = null;
    const session = new ParticipantSession({
      identity: kp,
      coordinatorKey: null,
      agentVersion: 'bench',
      transport: {
        send: (event, payload) => {
          if (event === 'secagg.shares' && drop.has(k)) return void socket.disconnect();
          wire.send(event, payload);
        },
        sendWithAck: (event, payload, timeoutMs) => wire.sendWithAck(event, payload, timeoutMs),
      },
      train: async () => {
        if (drop.has(k)) return new Promise(() => undefined); // it leaves after sharing its keys
        endTurn = await nextTurn();
        const delta = new Float32Array(D);
        for (let i = 0; i < D; i++) delta[i] = 0.001 * Math.sin(i * 0.001 + k);
        return { delta, weight: 100 + k, report: { loss: 1, steps: 1, epsilon: null } };
      },
      evaluate: async () => ({ mae: 1, psnr: 1, ssim: 1, count: 1 }),
      onEvent: (e) => {
        // The upload is over (sent or failed): the next site may make its vector.
        if (e.type === 'state' && (e.state === 'masked-input-sent' || e.state === 'failed')) {
          endTurn?.();
          endTurn = null;
        }
      },
      log: {
        info: () => undefined,
        warn: () => undefined,
        error: (message, fields) => console.error(`site ${k}: ${message} ${JSON.stringify(fields ?? {})}`),
      },
    });
    attachSession(socket, session);
    socket.on('connect_error', reject);
    socket.on('auth.ok', () => resolve(socket));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      sites: { type: 'string' },
      params: { type: 'string' },
      drop: { type: 'string', default: '' },
    },
  });
  url = values.url!;
  D = Number(values.params);
  drop = new Set((values.drop ?? '').split(',').filter(Boolean).map(Number));
  const n = Number(values.sites);
  const sockets: Socket[] = [];
  for (let k = 0; k < n; k++) sockets.push(await site(k));
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    for (const s of sockets) s.disconnect();
    process.exit(0);
  });
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
