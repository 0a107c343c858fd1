import type { Socket } from 'socket.io-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../apps/coordinator/src/testing/protocol-agent';
import { until } from '../until';
import { http, type Target, TINY_PARAMS, targetForFile } from './harness';
import { deltaFor, federationWithSites, roundsOf } from './sites';

/**
 * A round's completion and the federation's current model change together or not at all: the
 * coordinator killed (SIGKILL) while a round is evaluating its new model leaves the federation on
 * the last completed round's model, the round recorded as aborted without an output, and none of
 * its metrics; the next round starts from the last completed model.
 */

const file = targetForFile('rounds', { args: ['--auth-failures', '100000'] });
let target: Target;

beforeAll(async () => {
  target = file.get();
});

describe('round completion is atomic', () => {
  it('killed while a round evaluates: its output never becomes the next input, its partial metrics are not shown', async () => {
    const fed = await federationWithSites(target, 'atomic', 3);
    // First life: round 0 completes; in round 1 the sites never answer the evaluation.
    const agents: Socket[] = await Promise.all(
      fed.sites.map((s, k) =>
        startAgent(`${target.url}/agents`, s.kp, deltaFor(TINY_PARAMS, k), 10, {
          evalReport: (m) => (m.roundId.endsWith(':0') ? { mae: 70, psnr: 28, ssim: 0.8, count: 50 } : null),
        }),
      ),
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/start`);
    const evaluating = await until(
      'round 1 evaluating',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => r.number === 1 && r.stage === 'evaluating'),
      120_000,
    );
    const round0 = (await roundsOf(target, fed.federationId)).find((r) => r.number === 0)!;
    expect(round0.stage).toBe('completed');
    await target.fed.stopCoordinator('SIGKILL');
    for (const a of agents) a.disconnect();

    // Second life on the same database and data folder.
    await target.fed.startCoordinator();
    const afterRestart = await http(target, 'GET', `/api/federations/${fed.federationId}`);
    expect(afterRestart.json.currentCheckpoint).toBe(round0.checkpointOut);
    const aborted = (await roundsOf(target, fed.federationId)).find((r) => r.id === evaluating.id)!;
    expect(aborted.stage).toBe('aborted');
    expect(aborted.error).toMatch(/restarted while the round was in evaluating/);
    expect(aborted.checkpointOut).toBeNull();
    const metrics = (await http(target, 'GET', `/api/federations/${fed.federationId}/metrics`))
      .json as unknown as {
      round: number;
    }[];
    expect(metrics.some((m) => m.round === 0)).toBe(true);
    expect(metrics.filter((m) => m.round === 1)).toEqual([]);

    // Training goes on from round 0's model.
    const agents2: Socket[] = await Promise.all(
      fed.sites.map((s, k) => startAgent(`${target.url}/agents`, s.kp, deltaFor(TINY_PARAMS, k), 10)),
    );
    const next = await until(
      'a round after the restart to complete',
      async () =>
        (await roundsOf(target, fed.federationId)).find((r) => r.number > 1 && r.stage === 'completed'),
      120_000,
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/pause`);
    for (const a of agents2) a.disconnect();
    expect(next.checkpointIn).toBe(round0.checkpointOut);
    expect((await http(target, 'GET', `/api/federations/${fed.federationId}`)).json.currentCheckpoint).toBe(
      next.checkpointOut,
    );
  }, 300_000);
});
