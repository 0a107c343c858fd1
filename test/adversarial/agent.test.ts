import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSitePhantoms } from '../../apps/demo/src/local-federation';
import { tinyFederation } from '../tiny-federation';
import { until } from '../until';
import { http, type Target, targetForFile } from './harness';
import { roundsOf } from './sites';

/**
 * The site side, with real agent processes: a site whose data disappears after it started (an
 * unmounted archive) fails its local training; it says so at once (train.failed) and every round
 * goes on without it instead of waiting out the training deadline. (Data the agent refuses to
 * start on, such as Infinity voxels, is tested in apps/site-agent/src/cli/run-commands.test.ts.)
 */
const TRAIN_SECONDS = 120;

const file = targetForFile('agent', { args: ['--auth-failures', '100000'], trainSeconds: TRAIN_SECONDS });
let target: Target;

beforeAll(async () => {
  target = file.get();
});

describe('a site whose local training fails', () => {
  it('sends train.failed with the reason; its dropout is recorded and two rounds complete in far less than the training deadline', async () => {
    const f = await target.fed.createFederation(
      'train-fails',
      tinyFederation({ minSites: 3, localSteps: 5 }, { threatModel: 'honest-but-curious' }),
    );
    const names = ['site-1', 'site-2', 'site-3', 'site-4'];
    const dataDirs = await writeSitePhantoms(join(file.dir(), 'data'), names, {
      seed: 40,
      subjects: 3,
      size: 32,
    });
    for (const [k, name] of names.entries()) await target.fed.addSite(f.id, name, dataDirs[k]);
    await until(
      'four sites online',
      async () => {
        const sites = (await http(target, 'GET', `/api/federations/${f.id}/sites`)).json as {
          online: boolean;
        }[];
        return sites.filter((s) => s.online).length === 4 ? true : undefined;
      },
      60_000,
    );
    // site-4's data goes away under the running agent.
    rmSync(dataDirs[3], { recursive: true, force: true });
    const broken = target.fed.agents.get('site-4')!.siteId;
    const t0 = Date.now();
    await http(target, 'POST', `/api/federations/${f.id}/start`);
    const rounds = await until(
      'two completed rounds',
      async () => {
        const rs = await roundsOf(target, f.id);
        if (rs.some((r) => r.stage === 'failed')) throw new Error(JSON.stringify(rs));
        const done = rs.filter((r) => r.stage === 'completed');
        return done.length >= 2 ? done : undefined;
      },
      2 * TRAIN_SECONDS * 1000,
    );
    const seconds = (Date.now() - t0) / 1000;
    await http(target, 'POST', `/api/federations/${f.id}/pause`);
    console.info(
      `two rounds with a failing site took ${seconds.toFixed(1)} s (training deadline ${TRAIN_SECONDS} s)`,
    );
    expect(seconds).toBeLessThan(TRAIN_SECONDS);
    for (const r of rounds.slice(0, 2)) {
      expect(r.participants.map((p) => p.siteId)).toContain(broken);
      expect(r.dropouts).toHaveLength(1);
      expect(r.dropouts[0].siteId).toBe(broken);
      expect(r.dropouts[0].reason).toMatch(/ENOENT|no such file|no subjects|cannot/i);
    }
  }, 300_000);
});
