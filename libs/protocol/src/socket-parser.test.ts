import { createHash } from 'node:crypto';
import {
  defaultThreshold,
  type RoundConfig,
  SecAggClient,
  SecAggServer,
  SHARE_CIPHERTEXT_BYTES,
} from '@fedsynth/secure-agg';
import { Encoder, PacketType } from 'socket.io-parser';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { MAX_CHUNK_BYTES } from './chunked';
import { agentLimits, PRE_LOGIN_LIMITS } from './message-limits';
import { signedAuthResponse } from './schemas';
import { maskedTransferId } from './secagg-messages';
import { LimitedDecoder, MessageLimitError } from './socket-parser';

/** The frames socket.io sends for one event: the text part, then each binary attachment. */
function frames(event: string, payload: unknown): (string | Buffer)[] {
  return new Encoder().encode({ type: PacketType.EVENT, nsp: '/agents', data: [event, payload] }) as (
    | string
    | Buffer
  )[];
}

/** Feeds frames to a decoder; resolves with the decoded events, or throws its refusal. */
function decode(decoder: LimitedDecoder, all: (string | Buffer)[]): string[] {
  const got: string[] = [];
  decoder.on('decoded', (p: { data: unknown[] }) => got.push(String(p.data[0])));
  for (const f of all) decoder.add(f);
  decoder.off('decoded');
  return got;
}

/** A header announcing `n` attachments for `event`, as a hostile client writes it by hand. */
const announce = (event: string, n: number) => `5${n}-/agents,["${event}",{}]`;

/** Every message agents send in a real round of `n` sites (one dropping after sharing keys). */
function roundMessages(n: number, graph: RoundConfig['graph']): [string, unknown][] {
  const keys = Array.from({ length: n }, (_, i) =>
    nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i + 1)),
  );
  const config: RoundConfig = {
    roundId: 'fed:7',
    modelHash: createHash('sha256').update('m').digest('hex'),
    participants: keys.map((k, i) => ({ index: i + 1, siteId: `s${i + 1}`, identityKey: k.publicKey })),
    threshold: graph.kind === 'complete' ? defaultThreshold(n, 'honest-but-curious') : 3,
    graph,
    vectorLength: 300_000,
    quantization: { clip: 1, levels: 1024, maxWeight: 1 },
  };
  const out: [string, unknown][] = [];
  const server = new SecAggServer(config);
  const clients = keys.map(
    (k, i) => new SecAggClient({ config, selfIndex: i + 1, identitySecretKey: k.secretKey }),
  );
  const send = <T>(event: string, m: T) => {
    out.push([event, m]);
    return m;
  };
  for (const c of clients) server.receiveAdvertise(send('secagg.advertise', c.advertiseKeys()));
  for (const [i, r] of server.closeAdvertise())
    server.receiveShares(send('secagg.shares', clients[i - 1].shareKeys(r)));
  for (const [i, inbox] of server.closeShareKeys()) {
    if (i === n) continue; // drops out before its masked input
    for (const ch of clients[i - 1].maskedInput(inbox, {
      values: new Float32Array(300_000).fill(0.1),
      weight: 1,
    })) {
      send('secagg.masked-chunk', {
        transferId: maskedTransferId('fed:7', i),
        offset: ch.offset * 4,
        total: 300_001 * 4,
        data: new Uint8Array(ch.data.buffer, ch.data.byteOffset, ch.data.byteLength),
      });
      server.receiveMaskedChunk(i, ch.offset, ch.data);
    }
    server.completeMaskedInput(i);
  }
  for (const [i, l] of server.closeMaskedInput())
    server.receiveConsistency(send('secagg.consistency', clients[i - 1].consistencyCheck(l)));
  for (const [i, r] of server.closeConsistency())
    server.receiveUnmask(send('secagg.unmask', clients[i - 1].unmask(r)));
  server.finalize();
  return out;
}

describe('LimitedDecoder', () => {
  it('decodes the login answer before login, and refuses everything a login does not need', () => {
    const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
    const login = frames('auth.response', signedAuthResponse(new Uint8Array(32).fill(1), kp, '0.1.0'));
    expect(decode(new LimitedDecoder(), login)).toEqual(['auth.response']);
    // The attack that held 1.5 GB: 99,999 attachments announced, then 1 MiB frames.
    expect(() => new LimitedDecoder().add(announce('secagg.masked-chunk', 99_999))).toThrow(
      /announces 99999 binary attachments; at most 0/,
    );
    expect(() => new LimitedDecoder().add(announce('auth.response', 4))).toThrow(/at most 3/);
    // Three attachments, as the login has, but one of them a megabyte.
    const fat = frames('auth.response', {
      ...signedAuthResponse(new Uint8Array(32).fill(1), kp, 'x'),
      signature: new Uint8Array(MAX_CHUNK_BYTES),
    });
    expect(() => decode(new LimitedDecoder(), fat)).toThrow(MessageLimitError);
    expect(() => new LimitedDecoder().add(`2/agents,["auth.response","${'a'.repeat(2000)}"]`)).toThrow(
      /2\d{3} characters; at most 1024/,
    );
  });

  it('after login, takes every message of real rounds (complete and Harary graphs, a dropout) within agentLimits(maxSites)', () => {
    for (const [n, graph] of [
      [3, { kind: 'complete' }],
      [7, { kind: 'complete' }],
      [12, { kind: 'harary', neighbours: 4, seed: new Uint8Array(32).fill(5) }],
    ] as [number, RoundConfig['graph']][]) {
      const d = new LimitedDecoder();
      d.setLimits(agentLimits(n));
      const messages = roundMessages(n, graph);
      const events = decode(
        d,
        messages.flatMap(([e, m]) => frames(e, m)),
      );
      expect(events).toEqual(messages.map(([e]) => e));
      expect(events).toContain('secagg.unmask');
    }
  });

  it('after login, refuses a message bigger than its event allows, and binary data on events that carry none', () => {
    const d = new LimitedDecoder();
    d.setLimits(agentLimits(5));
    const shares = (k: number) => ({
      roundId: 'r',
      sessionId: new Uint8Array(32),
      sender: 1,
      shares: Array.from({ length: k }, (_, i) => ({
        recipient: i + 2,
        ciphertext: new Uint8Array(SHARE_CIPHERTEXT_BYTES),
      })),
    });
    expect(decode(d, frames('secagg.shares', shares(5)))).toEqual(['secagg.shares']);
    expect(() => decode(d, frames('secagg.shares', shares(6)))).toThrow(/at most 6/);
    const e = new LimitedDecoder();
    e.setLimits(agentLimits(5));
    expect(() => decode(e, frames('round.eval-report', { roundId: 'r', blob: new Uint8Array(8) }))).toThrow(
      /at most 0/,
    );
    const f = new LimitedDecoder();
    f.setLimits(agentLimits(5));
    const chunk = { transferId: 't', offset: 0, total: 1, data: new Uint8Array(MAX_CHUNK_BYTES + 1) };
    expect(() => decode(f, frames('secagg.masked-chunk', chunk))).toThrow(/more binary data/);
  });

  it('the pre-login limits are what a login answer needs and no more', () => {
    expect(PRE_LOGIN_LIMITS.attachments('auth.response')).toEqual({ attachments: 3, attachmentBytes: 128 });
    expect(PRE_LOGIN_LIMITS.attachments('secagg.masked-chunk')).toEqual({
      attachments: 0,
      attachmentBytes: 0,
    });
  });
});
