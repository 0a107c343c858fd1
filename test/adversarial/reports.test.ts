import { beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../apps/coordinator/src/testing/protocol-agent';
import { until } from '../until';
import { http, type Target, TINY_PARAMS, targetForFile } from './harness';
import { deltaFor, federationWithSites, roundsOf } from './sites';

/**
 * A site that lies in its evaluation reports: an absurd slice count to outweigh the others, a
 * count past PostgreSQL's integer, values out of range. The global figures move by at most the
 * liar's capped weight, out-of-range reports are refused and nothing of them is stored, and no
 * database error ends a round.
 */

const file = targetForFile('reports', { args: ['--auth-failures', '100000'] });
let target: Target;

beforeAll(async () => {
  target = file.get();
});

const CAP = 1000;
const HONEST = [
  { mae: 60, psnr: 30, ssim: 0.9, count: 100 },
  { mae: 62, psnr: 31, ssim: 0.85, count: 120 },
  { mae: 58, psnr: 29, ssim: 0.8, count: 140 },
];
/** What the liar reports in each round. */
const LIES: Record<number, Record<string, number>> = {
  0: { mae: 1, psnr: 60, ssim: 1, count: 2147482900 },
  1: { mae: 1, psnr: 60, ssim: 2, count: 2 ** 52 },
  2: { mae: 1, psnr: 60, ssim: 1, count: 2 ** 52 },
};

describe('evaluation reports', () => {
  it('a lying site moves the global figures by at most its capped weight; out-of-range reports are refused; no round fails on a count', async () => {
    const fed = await federationWithSites(target, 'reports', 4, { plan: { maxEvalCount: CAP } });
    const liar = fed.sites[3];
    const refusals: string[] = [];
    const agents = await Promise.all(
      fed.sites.map((s, k) =>
        startAgent(`${target.url}/agents`, s.kp, deltaFor(TINY_PARAMS, k), 10, {
          evalReport: (m) => (k < 3 ? HONEST[k] : (LIES[Number(m.roundId.split(':')[1])] ?? LIES[2])),
        }),
      ),
    );
    agents[3].on('protocol.error', (e: { code: string; message: string }) =>
      refusals.push(`${e.code} ${e.message}`),
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/start`);
    await until(
      'three completed rounds',
      async () => {
        const rs = await roundsOf(target, fed.federationId);
        if (rs.some((r) => r.stage === 'failed')) throw new Error(JSON.stringify(rs));
        return rs.filter((r) => r.stage === 'completed').length >= 3 ? rs : undefined;
      },
      180_000,
    );
    await http(target, 'POST', `/api/federations/${fed.federationId}/pause`);
    for (const a of agents) a.disconnect();
    const metrics = (await http(target, 'GET', `/api/federations/${fed.federationId}/metrics?perSite=1`))
      .json as unknown as {
      round: number;
      site: string | null;
      name: string;
      value: number;
      count: number;
    }[];
    const global = (round: number, name: string) =>
      metrics.find((m) => m.round === round && m.site === null && m.name === name)!;
    const honestSum = (name: 'mae' | 'psnr' | 'ssim') => HONEST.reduce((a, h) => a + h[name] * h.count, 0);
    const honestCount = HONEST.reduce((a, h) => a + h.count, 0);

    // Rounds 0 and 2: the liar weighs CAP slices, not two billion or 2^52 (hand-computed means).
    for (const round of [0, 2]) {
      expect(global(round, 'mae').value).toBeCloseTo((honestSum('mae') + 1 * CAP) / (honestCount + CAP), 9);
      expect(global(round, 'ssim').value).toBeCloseTo((honestSum('ssim') + 1 * CAP) / (honestCount + CAP), 9);
      expect(global(round, 'mae').count).toBe(honestCount + CAP);
      const liarRow = metrics.find((m) => m.round === round && m.site === liar.siteId && m.name === 'mae')!;
      expect(liarRow.count).toBe(CAP);
    }
    // Round 1: SSIM 2 is refused; nothing of the liar's report is stored and the honest mean stands.
    expect(refusals.some((r) => /ssim must be in \[-1, 1\]/.test(r))).toBe(true);
    expect(
      metrics.filter(
        (m) => m.round === 1 && m.site === liar.siteId && ['mae', 'psnr', 'ssim'].includes(m.name),
      ),
    ).toEqual([]);
    expect(global(1, 'mae').value).toBeCloseTo(honestSum('mae') / honestCount, 9);
  }, 240_000);
});
