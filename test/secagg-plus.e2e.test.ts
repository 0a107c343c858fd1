import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFederation } from '../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from './tiny-federation';
import { until } from './until';

/**
 * SecAgg+ switched on from the product: a federation configured with a Harary graph of degree 4
 * trains with eight real agent processes; one is killed after key sharing, and the round completes
 * with the other seven, each neighbourhood reconstructing what the dropout's neighbours need.
 */
const SITES = 8;
let dir: string;
let fed: LocalFederation;
let drop: () => Promise<void>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-secaggplus-'));
  ({ fed, drop } = await startTestCoordinator(dir, { stageSeconds: 60, trainSeconds: 180 }));
}, 120_000);

afterAll(async () => {
  fed?.killAll();
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

describe('SecAgg+ from the federation configuration', () => {
  it('eight agent processes, Harary degree 4, one killed after sharing keys: the round completes with seven', async () => {
    const f = await fed.createFederation('secagg-plus', {
      ...tinyFederation(
        { minSites: SITES, localSteps: 40, waitSeconds: 120 },
        { threatModel: 'honest-but-curious', graph: { kind: 'harary', neighbours: 4 } },
      ),
    });
    const names = Array.from({ length: SITES }, (_, k) => `site-${k + 1}`);
    await fed.addPhantomSites(f.id, names, { dataRoot: join(dir, 'data'), seed: 60, subjects: 2, size: 32 });
    await fed.api('POST', `/api/federations/${f.id}/start`);
    const r = await until(
      'the first round in masked-input',
      async () => (await fed.rounds(f.id)).find((x) => x.stage === 'masked-input'),
      240_000,
    );
    await fed.killAgent('site-8');
    const ended = await until(
      'that round to end',
      async () => {
        const x = (await fed.rounds(f.id)).find((y) => y.id === r.id)!;
        return ['completed', 'failed', 'aborted'].includes(x.stage) ? x : undefined;
      },
      300_000,
    );
    await fed.api('POST', `/api/federations/${f.id}/pause`);
    expect(ended.stage, ended.error ?? '').toBe('completed');
    expect(ended.participants).toHaveLength(SITES);
    expect(ended.secagg).toEqual({ graph: 'harary', neighbours: 4, threshold: 3 });
    expect(ended.dropouts).toEqual([{ siteId: fed.agents.get('site-8')!.siteId, stage: 'masked-input' }]);
    expect(ended.checkpointOut).toMatch(/^[0-9a-f]{64}$/);
  }, 600_000);
});
