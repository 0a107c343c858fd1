import type nacl from 'tweetnacl';
import { beforeAll, describe, expect, it } from 'vitest';
import { duringAttack, http, type Target, targetForFile } from './harness';
import { enrolledSite, flood, login, rawSocket } from './sites';

/**
 * The agents' socket gateway under attack: raw websockets that announce more binary data than a
 * message may carry (before and after login), connections that never log in, and messages built
 * to make the coordinator answer with its internals.
 */
// Connections that time out count as failed logins; the throttle has its own test file.
const file = targetForFile('gw', { args: ['--auth-failures', '100000'] });
let target: Target;
let federationId: string;
let site: { kp: nacl.SignKeyPair; siteId: string };
const MB = 1024 * 1024;

beforeAll(async () => {
  target = file.get();
  federationId = (await http(target, 'POST', '/api/federations', { body: { name: 'gw' } })).json.id as string;
  site = await enrolledSite(target, federationId, 'hospital-1');
});

describe('before login', () => {
  it('messages announcing 99,999 attachments, then 1 MiB frames, on three connections at a time (each attacker reconnecting for 3 s): each is closed at the announcement; RSS grows < 64 MB, /health answers in < 1 s', async () => {
    const pushed: number[] = [];
    const attack = await duringAttack(target, async () => {
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        await Promise.all(
          [0, 1, 2].map(async (k) => {
            const s = await rawSocket(target);
            if ('refused' in s) throw new Error(`refused before the attack: ${s.refused}`);
            // One joins the namespace first, one does not, one pretends to log in.
            if (k === 0) s.ws.send('40/agents,');
            const header =
              k === 2 ? '453-/agents,["auth.response",{}]' : '4599999-/agents,["secagg.masked-chunk",{}]';
            s.ws.send(header);
            pushed.push(await flood(s.ws, 1500 * MB));
            await s.closed;
          }),
        );
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    console.info(
      `under attack (${pushed.length} connections, ${pushed.reduce((a, b) => a + b, 0) / MB} MiB accepted in all): ${JSON.stringify(attack)}`,
    );
    expect(pushed.length).toBeGreaterThan(5);
    // socket.io closed every connection long before it could push 1.5 GB.
    for (const p of pushed) expect(p).toBeLessThan(64 * MB);
    expect(attack.growthMiB).toBeLessThan(64);
    expect(attack.slowestHealthMs).toBeLessThan(1000);
    // The real site still logs in afterwards.
    const ok = await login(target, site.kp);
    expect(ok.loggedIn).toBe(true);
    ok.socket.disconnect();
  }, 60_000);

  it('unauthenticated connections beyond 32 from one address are refused; the rest are closed at the 5 s login deadline', async () => {
    const opened = await Promise.all(Array.from({ length: 40 }, () => rawSocket(target)));
    const held = opened.filter((s): s is Exclude<typeof s, { refused: string }> => !('refused' in s));
    const refused = opened.filter((s) => 'refused' in s) as { refused: string }[];
    expect(held).toHaveLength(32);
    expect(refused).toHaveLength(8);
    // engine.io answers a refused upgrade with 400.
    for (const r of refused) expect(r.refused).toBe('HTTP 400');
    const t0 = Date.now();
    const closedAt = await Promise.all(held.map((s) => s.closed));
    for (const t of closedAt) expect(t - t0).toBeLessThan(7_000);
    // Off the count again: a site logs in.
    const ok = await login(target, site.kp);
    expect(ok.loggedIn).toBe(true);
    ok.socket.disconnect();
  }, 30_000);

  it('a connection that joins but never answers the challenge gets AUTH_TIMEOUT within the deadline', async () => {
    const { io } = await import('socket.io-client');
    const socket = io(`${target.url}/agents`, { transports: ['websocket'], reconnection: false });
    const t0 = Date.now();
    const errorSeen = new Promise<{ code: string }>((r) => socket.on('protocol.error', r));
    const closed = new Promise((r) => socket.on('disconnect', r));
    const error = await errorSeen;
    await closed;
    expect(error.code).toBe('AUTH_TIMEOUT');
    expect(Date.now() - t0).toBeGreaterThan(4_000);
    expect(Date.now() - t0).toBeLessThan(7_000);
  }, 15_000);
});

describe('after login', () => {
  it('binary data on a message that carries none, or a masked chunk over 1 MiB, closes the connection', async () => {
    for (const [event, payload] of [
      [
        'round.eval-report',
        {
          roundId: 'r',
          modelHash: 'a'.repeat(64),
          mae: 1,
          psnr: 1,
          ssim: 1,
          count: 1,
          x: new Uint8Array(10),
        },
      ],
      ['secagg.masked-chunk', { transferId: 't', offset: 0, total: 8, data: new Uint8Array(MB + 1) }],
    ] as const) {
      const s = await login(target, site.kp);
      expect(s.loggedIn).toBe(true);
      const gone = new Promise((r) => s.socket.once('disconnect', r));
      s.socket.emit(event, payload);
      await gone;
      expect(s.socket.connected, event).toBe(false);
    }
  });

  it('malformed messages get protocol codes naming the field, never database or stack text', async () => {
    const s = await login(target, site.kp);
    expect(s.loggedIn).toBe(true);
    const bad: [string, unknown][] = [
      ['agent.hello', { backend: 'x', device: 'y', sampleCount: 2 ** 40, accepting: true }],
      ['round.eval-report', { roundId: 'r', modelHash: 'a'.repeat(64), mae: 1, psnr: 1, ssim: 7, count: 1 }],
      ['round.train-report', { roundId: 'r', loss: -1, steps: 1, epsilon: null }],
      ['blob.request', { sha256: "'; DROP TABLE sites; --", offset: 0 }],
      ['no.such.event', {}],
    ];
    for (const [event, payload] of bad) s.socket.emit(event, payload);
    await new Promise((r) => setTimeout(r, 500));
    expect(s.errors.map((e) => e.code)).toEqual([
      'INVALID_MESSAGE',
      'INVALID_MESSAGE',
      'INVALID_MESSAGE',
      'INVALID_MESSAGE',
      'UNKNOWN_MESSAGE',
    ]);
    expect(s.errors[0].message).toMatch(/sampleCount/);
    expect(s.errors[1].message).toMatch(/ssim must be in \[-1, 1\]/);
    for (const e of s.errors)
      expect(e.message).not.toMatch(/QueryFailed|out of range for type|relation|column|\.js:\d+/);
    s.socket.disconnect();
    // Nothing of it was stored.
    const sites = await http(target, 'GET', `/api/federations/${federationId}/sites`);
    expect((sites.json as { sampleCount: number }[])[0].sampleCount).toBe(0);
  });
});
