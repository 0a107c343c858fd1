import { ChunkReceiver, roundStartPayload, signedAuthResponse, socketParser } from '@fedsynth/protocol';
import { ed25519Verify, type RoundConfig, SecAggClient, sessionId } from '@fedsynth/secure-agg';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';

/**
 * A protocol-level site for tests (the real agent is apps/site-agent): logs in, fetches the global checkpoint by hash, runs a real SecAggClient
 * through every stage with a synthetic delta and weight. `dropAt` makes it disconnect at a stage.
 */
export function startAgent(
  url: string,
  kp: nacl.SignKeyPair,
  delta: Float32Array,
  weight: number,
  opts: {
    dropAt?: string;
    beforeMaskedInput?: () => Promise<void>;
    coordinatorKey?: Uint8Array;
    /** Replaces the signed key advert (e.g. with forged keys). */
    advertise?: (client: SecAggClient) => unknown;
    /** Replaces the evaluation report; null sends none. */
    evalReport?: (m: { roundId: string; modelHash: string }) => Record<string, unknown> | null;
    /** Awaited before the evaluation report is sent. */
    beforeEval?: () => Promise<void>;
  } = {},
): Promise<Socket> {
  const dropAt = opts.dropAt;
  return new Promise((resolve) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false, parser: socketParser });
    let client: SecAggClient | undefined;
    let blob: ChunkReceiver | undefined;
    const drop = (stage: string) => {
      if (dropAt === stage) {
        socket.disconnect();
        return true;
      }
      return false;
    };
    socket.on('auth.challenge', (c: { nonce: Uint8Array }) =>
      socket.emit('auth.response', signedAuthResponse(c.nonce, kp, 'test')),
    );
    socket.on('auth.ok', () => resolve(socket));
    socket.on('round.start', (m: { secAgg: RoundConfig; modelBytes: number }) => {
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
      if (
        opts.coordinatorKey &&
        !ed25519Verify(
          opts.coordinatorKey,
          roundStartPayload(sessionId(config), m as never),
          new Uint8Array((m as unknown as { signature: Uint8Array }).signature),
        )
      ) {
        socket.emit('round.reply', {
          roundId: config.roundId,
          accept: false,
          reason: 'round start not signed by the pinned coordinator key',
        });
        return;
      }
      client = new SecAggClient({ config, selfIndex: me.index, identitySecretKey: kp.secretKey });
      blob = new ChunkReceiver(config.modelHash, m.modelBytes, config.modelHash);
      socket.emit('blob.request', { sha256: config.modelHash, offset: 0 });
      if (drop('advertise-keys')) return;
      socket.emit('secagg.advertise', opts.advertise ? opts.advertise(client) : client.advertiseKeys());
    });
    socket.on('blob.chunk', (c: { transferId: string; offset: number; total: number; data: Uint8Array }) => {
      blob?.accept({ ...c, data: new Uint8Array(c.data) });
    });
    socket.on('secagg.roster', (r) => {
      if (drop('share-keys')) return;
      socket.emit('secagg.shares', client!.shareKeys(r));
    });
    socket.on('secagg.inbox', async (inbox) => {
      if (drop('masked-input')) return;
      // A real site trains here from the checkpoint it fetched: wait until it has arrived intact.
      for (let i = 0; i < 500 && !blob!.complete; i++) await new Promise((r) => setTimeout(r, 10));
      if (blob!.result().length === 0) throw new Error('empty checkpoint');
      await opts.beforeMaskedInput?.();
      socket.emit('round.train-report', {
        roundId: client!.config.roundId,
        loss: 0.25,
        steps: 10,
        epsilon: weight / 100, // stands in for a DP accountant: distinct per site
      });
      for (const ch of client!.maskedInput(inbox, { values: delta, weight })) {
        const data = new Uint8Array(ch.data.buffer, ch.data.byteOffset, ch.data.byteLength);
        socket.emit('secagg.masked-chunk', {
          transferId: `${client!.config.roundId}/${client!.selfIndex}`,
          offset: ch.offset * 4,
          total: (delta.length + 1) * 4,
          data,
        });
      }
    });
    socket.on('secagg.survivors', (l) => {
      if (drop('consistency-check')) return;
      socket.emit('secagg.consistency', client!.consistencyCheck(l));
    });
    socket.on('round.evaluate', async (m: { roundId: string; modelHash: string }) => {
      await opts.beforeEval?.();
      // A site scores the new model on its validation split; here a figure derived from its weight.
      const report = opts.evalReport
        ? opts.evalReport(m)
        : { mae: 50 + weight / 10, psnr: 30, ssim: 0.9, count: weight };
      if (report) socket.emit('round.eval-report', { roundId: m.roundId, modelHash: m.modelHash, ...report });
    });
    socket.on('secagg.consistency-result', (r) => {
      if (drop('unmask')) return;
      socket.emit('secagg.unmask', client!.unmask(r));
    });
  });
}
