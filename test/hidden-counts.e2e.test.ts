import { describe, expect, it } from 'vitest';
import { capturedFederation } from './captured-federation';
import { tinyFederation } from './tiny-federation';
import { sentEvents } from './wire-capture';

/**
 * A federation whose privacy setting hides counts: what site-1 sends, as captured on the wire,
 * holds no plain-text sample or slice count; the global figures still arrive.
 */
const e2e = capturedFederation(
  'hidden-counts',
  { ...tinyFederation({ localSteps: 3 }), privacy: { hideCounts: true } },
  { seed: 80 },
);

describe('privacy.hideCounts', () => {
  it('no plain-text sample or slice count leaves a site; the global figures still arrive', async () => {
    await e2e.fed.waitForRounds(e2e.federationId, 1, { timeoutMs: 240_000, maxFailures: 0 });
    const metrics = await e2e.fed.metrics(e2e.federationId);
    expect(metrics.find((m) => m.round === 0 && m.site === null && m.name === 'mae')?.value).toBeGreaterThan(
      0,
    );
    const sent = sentEvents(e2e.capture);
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
