import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { authPayload } from '@fedsynth/protocol';
import { ed25519Sign, type SecAggClient } from '@fedsynth/secure-agg';
import { advertisePayload } from '@fedsynth/secure-agg/messages';
import { io } from 'socket.io-client';
import nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../apps/coordinator/src/testing/protocol-agent';
import { until } from '../until';
import { http, type Target, TINY_PARAMS, targetForFile } from './harness';
import { deltaFor, enroll, enrolledSite, federationWithSites, login, roundsOf } from './sites';

/**
 * Weak keys at every place a key enters: enrollment, login, and the secure-aggregation key
 * adverts. The weak keys and forged signatures are libs/secure-agg's test vectors (computed in
 * Python from the curve; sources in libs/secure-agg/test-vectors/README.md).
 */
const vectors = JSON.parse(
  readFileSync(join(__dirname, '../../libs/secure-agg/test-vectors/ed25519-weak-keys.json'), 'utf8'),
) as {
  small_order_encodings: { encoding: string; kind: string; order: number }[];
  non_canonical_y: { encoding: string }[];
  mixed_order: { public_key: string }[];
  l: string;
  x25519_low_order: { encoding: string }[];
};
const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

let federationId: string;

const file = targetForFile('keys', { args: ['--auth-failures', '100000'] });
let target: Target;

beforeAll(async () => {
  target = file.get();
  federationId = (await http(target, 'POST', '/api/federations', { body: { name: 'keys' } })).json
    .id as string;
});

/** The "trivial" signature that verifies for the identity point on any message: R = identity, S = 0. */
const trivialSignature = new Uint8Array(64);
trivialSignature[0] = 1;

describe('Ed25519 identity keys', () => {
  it('enrollment refuses every small-order, non-canonical and mixed-order key (the identity point with the trivial signature included), stores nothing and leaves the token unused', async () => {
    const tok = await http(target, 'POST', `/api/federations/${federationId}/enrollment-tokens`, {
      body: { siteName: 'attacker' },
    });
    const token = tok.json.token as string;
    const weak = [
      ...vectors.small_order_encodings.map((v) => v.encoding),
      ...vectors.non_canonical_y.map((v) => v.encoding),
      ...vectors.mixed_order.map((v) => v.public_key),
    ];
    expect(weak.length).toBeGreaterThanOrEqual(14 + 7);
    expect(weak).toContain(`01${'00'.repeat(31)}`);
    for (const k of weak) {
      const r = await http(target, 'POST', '/api/enroll', {
        token: null,
        body: {
          token,
          publicKey: Buffer.from(hex(k)).toString('base64'),
          signature: Buffer.from(trivialSignature).toString('base64'),
        },
      });
      expect(r.status, `${k}: ${r.text}`).toBe(400);
      expect(r.json.code).toBe('WEAK_KEY');
    }
    expect((await http(target, 'GET', `/api/federations/${federationId}/sites`)).json).toEqual([]);
    // The token was not consumed: the real site enrolls with it.
    const ok = await enroll(target, token, nacl.sign.keyPair());
    expect(ok.status).toBe(201);
  });

  it('login refuses the identity key with the trivial signature, and an enrolled key signing with S + L', async () => {
    // The identity point: refused before the database is asked who it is.
    const refused = await new Promise<string>((resolve) => {
      const socket = io(`${target.url}/agents`, { transports: ['websocket'], reconnection: false });
      socket.on('auth.challenge', (c: { nonce: Uint8Array; protocolVersion: number }) =>
        socket.emit('auth.response', {
          protocolVersion: c.protocolVersion,
          publicKey: hex(`01${'00'.repeat(31)}`),
          nonce: new Uint8Array(c.nonce),
          signature: trivialSignature,
          agentVersion: 'x',
        }),
      );
      socket.on('protocol.error', (e: { code: string }) => resolve(e.code));
    });
    expect(refused).toBe('BAD_SIGNATURE');
    // A real, approved site whose signature has S replaced by S + L (the same point, non-canonical).
    const site = await enrolledSite(target, federationId, 'malleable');
    const L = BigInt(vectors.l);
    const nonCanonical = await new Promise<string>((resolve) => {
      const socket = io(`${target.url}/agents`, { transports: ['websocket'], reconnection: false });
      socket.on('auth.challenge', (c: { nonce: Uint8Array; protocolVersion: number }) => {
        const nonce = new Uint8Array(c.nonce);
        const sig = ed25519Sign(site.kp.secretKey, authPayload(nonce, site.kp.publicKey));
        const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
        const sPlusL = Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse();
        socket.emit('auth.response', {
          protocolVersion: c.protocolVersion,
          publicKey: site.kp.publicKey,
          nonce,
          signature: new Uint8Array([...sig.subarray(0, 32), ...sPlusL]),
          agentVersion: 'x',
        });
      });
      socket.on('protocol.error', (e: { code: string }) => resolve(e.code));
    });
    expect(nonCanonical).toBe('BAD_SIGNATURE');
    // The same site with its canonical signature logs in.
    const ok = await login(target, site.kp);
    expect(ok.loggedIn).toBe(true);
    ok.socket.disconnect();
  });
});

describe('X25519 keys in secure-aggregation adverts', () => {
  it('a site advertising a low-order masking key (correctly signed) is refused at advertise-keys; the round completes with the others', async () => {
    const fed = await federationWithSites(target, 'adverts', 4);
    const lowOrder = hex(vectors.x25519_low_order[0].encoding);
    const refusals: { code: string; message: string }[] = [];
    const agents = await Promise.all(
      fed.sites.map((s, k) =>
        startAgent(`${target.url}/agents`, s.kp, deltaFor(TINY_PARAMS, k), 10, {
          advertise:
            k === 3
              ? (client: SecAggClient) => {
                  const a = client.advertiseKeys();
                  return {
                    ...a,
                    maskingKey: lowOrder,
                    signature: ed25519Sign(
                      s.kp.secretKey,
                      advertisePayload(client.session, a.sender, a.encryptionKey, lowOrder),
                    ),
                  };
                }
              : undefined,
        }),
      ),
    );
    agents[3].on('protocol.error', (e) => refusals.push(e));
    await http(target, 'POST', `/api/federations/${fed.federationId}/start`);
    const round = await until(
      'the first round to end',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => ['completed', 'failed'].includes(r.stage)),
      120_000,
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/pause`);
    for (const a of agents) a.disconnect();
    expect(round.stage, round.error ?? '').toBe('completed');
    expect(round.dropouts).toEqual([{ siteId: fed.sites[3].siteId, stage: 'advertise-keys' }]);
    expect(refusals.map((r) => r.code)).toContain('INVALID_ARGUMENT');
    expect(refusals.find((r) => r.code === 'INVALID_ARGUMENT')!.message).toMatch(/maskingKey/);
  }, 180_000);
});
