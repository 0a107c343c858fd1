/**
 * The protocol-level sites of the coordinator benchmark, in their own process: each logs in with its
 * key and runs a real SecAggClient through a round; masked vectors are uploaded one site at a time
 * with acknowledged 1 MiB chunks, so this process holds one vector at a time. Sites in --drop stop
 * after sharing keys.
 */
import { parseArgs } from 'node:util';
import { signedAuthResponse, socketParser } from '@fedsynth/protocol';
import { type RoundConfig, SecAggClient } from '@fedsynth/secure-agg';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';

let url = '';
let D = 0;
let drop = new Set<number>();

/** Deterministic key of site k (the benchmark's parent enrolls the same keys). */
export function benchKey(k: number): nacl.SignKeyPair {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, k + 1);
  return nacl.sign.keyPair.fromSeed(seed);
}

let uploads = Promise.resolve();

function site(k: number): Promise<Socket> {
  const kp = benchKey(k);
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false, parser: socketParser });
    let client: SecAggClient | undefined;
    socket.on('connect_error', reject);
    socket.on('auth.challenge', (c: { nonce: Uint8Array }) =>
      socket.emit('auth.response', signedAuthResponse(c.nonce, kp, 'bench')),
    );
    socket.on('auth.ok', () => resolve(socket));
    socket.on('round.start', (m: { secAgg: RoundConfig }) => {
      const config: RoundConfig = {
        ...m.secAgg,
        participants: m.secAgg.participants.map((p) => ({
          ...p,
          identityKey: new Uint8Array(p.identityKey),
        })),
      };
      const me = config.participants.find((p) =>
        Buffer.from(p.identityKey).equals(Buffer.from(kp.publicKey)),
      )!;
      client = new SecAggClient({ config, selfIndex: me.index, identitySecretKey: kp.secretKey });
      socket.emit('secagg.advertise', client.advertiseKeys());
    });
    socket.on('secagg.roster', (r) => {
      if (drop.has(k)) return void socket.disconnect();
      socket.emit('secagg.shares', client!.shareKeys(r));
    });
    socket.on('secagg.inbox', (inbox) => {
      uploads = uploads.then(async () => {
        const delta = new Float32Array(D);
        for (let i = 0; i < D; i++) delta[i] = 0.001 * Math.sin(i * 0.001 + k);
        for (const ch of client!.maskedInput(inbox, { values: delta, weight: 100 + k })) {
          const data = new Uint8Array(ch.data.buffer, ch.data.byteOffset, ch.data.byteLength);
          const r = await socket.emitWithAck('secagg.masked-chunk', {
            transferId: `${client!.config.roundId}/${client!.selfIndex}`,
            offset: ch.offset * 4,
            total: (D + 1) * 4,
            data,
          });
          if (!r.ok) throw new Error(`site ${k}: ${r.message}`);
        }
      });
    });
    socket.on('secagg.survivors', (l) => socket.emit('secagg.consistency', client!.consistencyCheck(l)));
    socket.on('secagg.consistency-result', (r) => socket.emit('secagg.unmask', client!.unmask(r)));
    socket.on('round.evaluate', (m: { roundId: string; modelHash: string }) => {
      socket.emit('round.eval-report', {
        roundId: m.roundId,
        modelHash: m.modelHash,
        mae: 1,
        psnr: 1,
        ssim: 1,
        count: 1,
      });
    });
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
