import { signedAuthResponse } from '@fedsynth/protocol';
import { io } from 'socket.io-client';
import nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import { http, type Target, targetForFile } from './harness';

/**
 * Guessing tokens and keys: failed authentications are counted per client address, across the
 * REST API and the agents' gateway, and an address past the limit gets 429 with Retry-After. The
 * coordinator trusts X-Forwarded-For from loopback here, so each test is its own client address.
 */

const file = targetForFile('rate', {
  args: ['--auth-failures', '5', '--auth-window-seconds', '60', '--trust-proxy', 'loopback'],
});
let target: Target;

beforeAll(async () => {
  target = file.get();
});

const from = (address: string) => ({ 'x-forwarded-for': address });
const wrongToken = `fsk_${'A'.repeat(43)}`;

/** Logs in with a key that is not enrolled; resolves with the refusal code. */
function loginAttempt(address: string): Promise<string> {
  const kp = nacl.sign.keyPair();
  return new Promise((resolve) => {
    const socket = io(`${target.url}/agents`, {
      transports: ['websocket'],
      reconnection: false,
      extraHeaders: from(address),
    });
    socket.on('auth.challenge', (c: { nonce: Uint8Array }) =>
      socket.emit('auth.response', signedAuthResponse(new Uint8Array(c.nonce), kp, 'test')),
    );
    socket.on('protocol.error', (e: { code: string }) => {
      socket.disconnect();
      resolve(e.code);
    });
    socket.on('connect_error', (e) => resolve(`connect_error: ${e.message}`));
  });
}

describe('failed authentications per address', () => {
  it('five wrong API tokens, then 429 with Retry-After, even for a valid token from that address; another address is unaffected', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await http(target, 'GET', '/api/federations', {
        token: wrongToken,
        headers: from('10.0.0.1'),
      });
      expect(r.status).toBe(401);
    }
    const limited = await http(target, 'GET', '/api/federations', {
      token: wrongToken,
      headers: from('10.0.0.1'),
    });
    expect(limited.status).toBe(429);
    expect(limited.json.code).toBe('RATE_LIMITED');
    const retry = Number(limited.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect((await http(target, 'GET', '/api/federations', { headers: from('10.0.0.1') })).status).toBe(429);
    expect((await http(target, 'GET', '/api/federations', { headers: from('10.0.0.2') })).status).toBe(200);
  });

  it('valid requests never count: a burst of 50 from one address all succeed', async () => {
    const all = await Promise.all(
      Array.from({ length: 50 }, () =>
        http(target, 'GET', '/api/federations', { headers: from('10.0.0.3') }),
      ),
    );
    expect(all.map((r) => r.status)).toEqual(Array(50).fill(200));
  });

  it('refused enrollments count: five bad tokens, then 429', async () => {
    const body = {
      token: 'fse_guess',
      publicKey: Buffer.alloc(32, 9).toString('base64'),
      signature: Buffer.alloc(64).toString('base64'),
    };
    const codes: number[] = [];
    for (let i = 0; i < 6; i++)
      codes.push(
        (await http(target, 'POST', '/api/enroll', { token: null, body, headers: from('10.0.0.5') })).status,
      );
    expect(codes.slice(0, 5).every((c) => c >= 400 && c < 500 && c !== 429)).toBe(true);
    expect(codes[5]).toBe(429);
  });

  it('agent logins with unknown keys count with the API failures of the same address, then RATE_LIMITED', async () => {
    for (let i = 0; i < 3; i++)
      expect(
        (await http(target, 'GET', '/api/federations', { token: wrongToken, headers: from('10.0.0.6') }))
          .status,
      ).toBe(401);
    expect(await loginAttempt('10.0.0.6')).toBe('UNKNOWN_KEY');
    expect(await loginAttempt('10.0.0.6')).toBe('UNKNOWN_KEY');
    expect(await loginAttempt('10.0.0.6')).toBe('RATE_LIMITED');
    expect((await http(target, 'GET', '/api/federations', { headers: from('10.0.0.6') })).status).toBe(429);
    expect(await loginAttempt('10.0.0.7')).toBe('UNKNOWN_KEY');
  });
});
