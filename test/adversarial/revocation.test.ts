import type { Socket } from 'socket.io-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../apps/coordinator/src/testing/protocol-agent';
import { until } from '../until';
import { http, type Target, TINY_PARAMS, targetForFile } from './harness';
import { deltaFor, federationWithSites, login, roundsOf } from './sites';

/**
 * Revoking a site that is connected and in a round: its connection closes within a second, the
 * round counts it as a dropout at its stage (or, when its masked update is already in the sum,
 * discards the round), it is never selected again and cannot log in.
 */

const file = targetForFile('revoke', { args: ['--auth-failures', '100000'], trainSeconds: 90 });
let target: Target;

beforeAll(async () => {
  target = file.get();
});

const never = () => new Promise<void>(() => undefined);

describe('revocation', () => {
  it('takes effect at once, mid-round, before and after the site uploaded', async () => {
    const fed = await federationWithSites(target, 'revoke', 5);
    const [s0, , , victim2, victim1] = fed.sites;
    // Site 0 holds its masked input back in round 1 only: decided before any round starts, so a
    // round 1 that runs fast on a busy machine cannot slip through before the hold is in place.
    let releaseSite0: () => void = () => undefined;
    const holdSite0 = new Promise<void>((r) => {
      releaseSite0 = r;
    });
    const agents: Socket[] = await Promise.all(
      fed.sites.map((s, k) =>
        startAgent(`${target.url}/agents`, s.kp, deltaFor(TINY_PARAMS, k), 10 + k, {
          beforeMaskedInput:
            k === 4 ? never : k === 0 ? (n) => (n === 1 ? holdSite0 : Promise.resolve()) : undefined,
        }),
      ),
    );
    const events = agents.map(() => ({ errors: [] as string[], closedAt: 0 }));
    agents.forEach((a, k) => {
      a.on('protocol.error', (e: { code: string }) => events[k].errors.push(e.code));
      a.on('disconnect', () => {
        events[k].closedAt = Date.now();
      });
    });
    await http(target, 'POST', `/api/federations/${fed.federationId}/start`);

    // Round 0: victim 1 holds its masked input back; revoked while the round waits for it.
    const r0 = await until(
      'round 0 in masked-input',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => r.number === 0 && r.stage === 'masked-input'),
      120_000,
    );
    await new Promise((r) => setTimeout(r, 1000)); // the others upload meanwhile
    const t0 = Date.now();
    expect((await http(target, 'POST', `/api/sites/${victim1.siteId}/revoke`)).status).toBe(201);
    await until('victim 1 to be disconnected', async () => (events[4].closedAt ? true : undefined), 5000);
    console.info(`victim 1 disconnected ${events[4].closedAt - t0} ms after the revocation was answered`);
    expect(events[4].closedAt - t0).toBeLessThan(1000);
    expect(events[4].errors).toContain('REVOKED');
    const done0 = await until(
      'round 0 to end',
      async () =>
        (await roundsOf(target, fed.federationId)).find(
          (r) => r.id === r0.id && ['completed', 'failed'].includes(r.stage),
        ),
      60_000,
    );
    expect(done0.stage, done0.error ?? '').toBe('completed');
    expect(done0.dropouts).toEqual([
      { siteId: victim1.siteId, stage: 'masked-input', reason: 'revoked during the round' },
    ]);
    // It cannot log in again.
    const again = await login(target, victim1.kp);
    expect(again.loggedIn).toBe(false);
    expect(again.errors.map((e) => e.code)).toContain('REVOKED');

    // Round 1: victim 2 uploads; site 0 holds its upload so the stage stays open; victim 2 is
    // revoked with its update already in the sum: the round is discarded, the model unchanged.
    const r1 = await until(
      'round 1 in masked-input',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => r.number === 1 && r.stage === 'masked-input'),
      120_000,
    );
    expect(r1.participants.map((p) => p.siteId)).not.toContain(victim1.siteId);
    await new Promise((r) => setTimeout(r, 1500)); // victim 2's upload completes meanwhile
    expect((await http(target, 'POST', `/api/sites/${victim2.siteId}/revoke`)).status).toBe(201);
    await until('victim 2 to be disconnected', async () => (events[3].closedAt ? true : undefined), 5000);
    releaseSite0();
    const done1 = await until(
      'round 1 to end',
      async () =>
        (await roundsOf(target, fed.federationId)).find(
          (r) => r.id === r1.id && ['completed', 'failed'].includes(r.stage),
        ),
      60_000,
    );
    expect(done1.stage).toBe('failed');
    expect(done1.error).toMatch(
      new RegExp(`"${victim2.name}" was revoked after its masked update went into the sum`),
    );
    expect(done1.checkpointOut).toBeNull();
    const current = (await http(target, 'GET', `/api/federations/${fed.federationId}`)).json
      .currentCheckpoint;
    expect(current).toBe(done0.checkpointOut);

    // The next round goes on with the three sites left.
    const r2 = await until(
      'a later round to complete',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => r.number > 1 && r.stage === 'completed'),
      120_000,
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/pause`);
    for (const a of agents) a.disconnect();
    const ids = r2.participants.map((p) => p.siteId);
    expect(ids).toHaveLength(3);
    expect(ids).not.toContain(victim1.siteId);
    expect(ids).not.toContain(victim2.siteId);
    expect(ids).toContain(s0.siteId);
    expect(r2.checkpointIn).toBe(done0.checkpointOut);
  }, 300_000);
});
