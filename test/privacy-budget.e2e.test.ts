import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privacySpent } from '@fedsynth/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFederation, RoundRecord } from '../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from './tiny-federation';
import { until } from './until';

/**
 * Distributed DP with an epsilon budget, through real agent processes: the coordinator accounts
 * each round at the noise its survivors actually added and stops the federation before a round
 * would spend more than the budget.
 */
const Z = 2;
const DELTA = 1e-5;
// Between the epsilon of two rounds at z and that of three: two rounds fit, the third does not.
const BUDGET = (privacySpent([Z, Z], DELTA) + privacySpent([Z, Z, Z], DELTA)) / 2;

let dir: string;
let drop: () => Promise<void>;
let fed: LocalFederation;
let federationId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-dp-'));
  ({ fed, drop } = await startTestCoordinator(dir));
  const f = await fed.createFederation('dp-budget', {
    ...tinyFederation({ localSteps: 3 }),
    dp: { clip: 0.05, noiseMultiplier: Z, delta: DELTA, epsilonBudget: BUDGET },
  });
  federationId = f.id;
  await fed.addPhantomSites(federationId, ['site-1', 'site-2', 'site-3'], {
    dataRoot: join(dir, 'data'),
    seed: 70,
  });
  await fed.api('POST', `/api/federations/${federationId}/start`);
}, 300_000);

afterAll(async () => {
  fed?.killAll();
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

describe('the epsilon budget', () => {
  it('stops the federation after the rounds it allows, each accounted at z sqrt(k / t)', async () => {
    const stopped = await until(
      'the federation to stop',
      async () => {
        const f = await fed.api<{ status: string; statusReason: string | null }>(
          'GET',
          `/api/federations/${federationId}`,
        );
        return f.status === 'stopped' ? f : undefined;
      },
      280_000,
    );
    expect(stopped.statusReason).toMatch(
      /^its privacy budget is spent: epsilon [\d.]+ after 2 noised rounds/,
    );
    const rounds = (await fed.rounds(federationId)).filter((r: RoundRecord) => r.stage === 'completed');
    expect(rounds).toHaveLength(2);
    const metrics = await fed.metrics(federationId);
    const global = (n: number, name: string) =>
      metrics.find((m) => m.round === n && m.site === null && m.name === name)?.value;
    const multipliers: number[] = [];
    for (const r of rounds.sort((a, b) => a.number - b.number)) {
      const k = (r.participants?.length ?? 0) - (r.dropouts?.length ?? 0);
      const t = r.secagg!.threshold;
      multipliers.push(Z * Math.sqrt(k / t));
      expect(global(r.number, 'dp_noise_multiplier')).toBeCloseTo(Z * Math.sqrt(k / t), 9);
      expect(global(r.number, 'epsilon')).toBeCloseTo(privacySpent(multipliers, DELTA), 9);
    }
    expect(global(rounds[1].number, 'epsilon')!).toBeLessThanOrEqual(BUDGET);
    // Each site accounts its own rounds at the guaranteed z: its figure is never below the coordinator's.
    const own = (await fed.metrics(federationId, true)).filter(
      (m) => m.round === rounds[1].number && m.site !== null && m.name === 'epsilon',
    );
    expect(own).toHaveLength(3);
    for (const m of own) expect(m.value).toBeGreaterThanOrEqual(global(rounds[1].number, 'epsilon')! - 1e-9);
  }, 300_000);
});
