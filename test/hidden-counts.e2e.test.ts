import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFederation } from '../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from './tiny-federation';
import { sentEvents, WireCapture } from './wire-capture';

/**
 * A federation whose privacy setting hides counts: what site-1 sends, as captured on the wire,
 * holds no plain-text sample or slice count; the global figures still arrive.
 */
let dir: string;
let drop: () => Promise<void>;
let fed: LocalFederation;
let capture: WireCapture;
let federationId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-counts-'));
  ({ fed, drop } = await startTestCoordinator(dir));
  capture = new WireCapture(() => Number(new URL(fed.url).port));
  await capture.start();
  const f = await fed.createFederation('hidden-counts', {
    ...tinyFederation({ localSteps: 3 }),
    privacy: { hideCounts: true },
  });
  federationId = f.id;
  await fed.addPhantomSites(federationId, ['site-1', 'site-2', 'site-3'], {
    dataRoot: join(dir, 'data'),
    seed: 80,
    coordinatorUrl: (k) => (k === 0 ? `http://127.0.0.1:${capture.port}` : undefined),
  });
  await fed.api('POST', `/api/federations/${federationId}/start`);
}, 300_000);

afterAll(async () => {
  fed?.killAll();
  await capture?.stop();
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

describe('privacy.hideCounts', () => {
  it('no plain-text sample or slice count leaves a site; the global figures still arrive', async () => {
    await fed.waitForRounds(federationId, 1, { timeoutMs: 240_000, maxFailures: 0 });
    const metrics = await fed.metrics(federationId);
    expect(metrics.find((m) => m.round === 0 && m.site === null && m.name === 'mae')?.value).toBeGreaterThan(
      0,
    );
    const sent = sentEvents(capture);
    const hellos = sent.filter((e) => e.event === 'agent.hello');
    expect(hellos.length).toBeGreaterThan(0);
    for (const h of hellos) expect(Object.keys(h.payload as object)).not.toContain('sampleCount');
    const evals = sent.filter((e) => e.event === 'round.eval-report');
    expect(evals.length).toBeGreaterThan(0);
    // The site has several validation slices; it reports a weight of 1, not their number.
    for (const e of evals) expect((e.payload as { count: number }).count).toBe(1);
    // Nothing else it sent names a count either: only the protocol's count-free messages.
    const fields = new Set(sent.flatMap((e) => Object.keys((e.payload ?? {}) as object)));
    for (const f of ['sampleCount', 'subjects', 'slices', 'samples']) expect(fields.has(f)).toBe(false);
  }, 300_000);
});
