import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, type MetricRecord } from '../apps/demo/src/local-federation';
import { AuditLog } from '../apps/site-agent/src/audit/audit-log';
import { capturedFederation } from './captured-federation';
import { tinyFederation } from './tiny-federation';
import { sentEvents } from './wire-capture';

/**
 * A federation with privacy.secureMetrics: site-1's figures leave only inside its masked vector
 * (checked on the wire and in its audit log), the coordinator keeps only global figures, and the
 * global MAE/PSNR/SSIM of a model equal the slice-weighted mean of each site's own scores of that
 * model, computed here by `fedsynth-agent evaluate` at each site, within the stated resolution.
 */
const SITES = ['site-1', 'site-2', 'site-3'];
const LEVELS = 2 ** 24;
const MAX_WEIGHT = 10_000;
const SIZE = 16;
// 2^24 levels: the figures' resolution is then well below the figures' own differences.
const e2e = capturedFederation(
  'secure-metrics',
  {
    ...tinyFederation({ localSteps: 3, rounds: 2 }, { levels: LEVELS, maxWeight: MAX_WEIGHT }),
    privacy: { secureMetrics: true },
  },
  { seed: 90, sites: SITES },
);

/** A site's own scores of a model, by the agent's `evaluate` command with the round's sampler settings. */
async function siteScores(
  site: string,
  sha: string,
): Promise<{ mae: number; psnr: number; ssim: number; slices: number }> {
  const stateDir = e2e.fed.agents.get(site)!.stateDir;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      AGENT_BIN,
      'evaluate',
      '--state-dir',
      stateDir,
      '--model',
      join(stateDir, 'models', `${sha}.safetensors`),
      '--max-slices',
      '16',
      '--steps',
      '10',
    ],
    { env: { ...process.env, FEDSYNTH_BACKEND: 'wasm' } },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe('privacy.secureMetrics', () => {
  it('no figure leaves a site in plain text; the global figures are the weighted means of the sites’ own', async () => {
    const rounds = await e2e.fed.waitForRounds(e2e.federationId, 2, { timeoutMs: 300_000, maxFailures: 0 });
    const [r0, r1] = rounds.filter((r) => r.stage === 'completed').sort((a, b) => a.number - b.number);
    expect([r0.number, r1.number]).toEqual([0, 1]);
    const checkpointIn = (r: unknown) => (r as { checkpointIn: string }).checkpointIn;
    expect(checkpointIn(r1)).toBe(r0.checkpointOut);

    // What site-1 sent: no evaluation report, training reports with no figure, no figure anywhere.
    const sent = sentEvents(e2e.capture);
    expect(sent.filter((e) => e.event === 'round.eval-report')).toEqual([]);
    const reports = sent.filter((e) => e.event === 'round.train-report');
    expect(reports.length).toBeGreaterThanOrEqual(2);
    for (const r of reports) expect(Object.keys(r.payload as object).sort()).toEqual(['roundId', 'steps']);
    const fields = new Set(sent.flatMap((e) => Object.keys((e.payload ?? {}) as object)));
    for (const f of ['loss', 'epsilon', 'mae', 'psnr', 'ssim', 'count', 'nearestSynth', 'nearestReal'])
      expect(fields.has(f), f).toBe(false);
    expect(sent.filter((e) => e.event === 'secagg.masked-chunk').length).toBeGreaterThanOrEqual(2);
    // Its audit log says where they went: inside a masked chunk of each round.
    const audit = AuditLog.read(join(e2e.fed.agents.get('site-1')!.stateDir, 'audit.jsonl'));
    const carriers = audit.filter((a) => a.type === 'secagg.masked-chunk' && a.inside?.includes('mae'));
    expect(new Set(carriers.map((a) => a.round))).toEqual(
      new Set([`${e2e.federationId}:0`, `${e2e.federationId}:1`]),
    );
    expect(carriers[0].inside).toEqual(expect.arrayContaining(['train_loss', 'mae', 'psnr', 'ssim']));

    // The coordinator keeps global figures only.
    const perSite = await e2e.fed.metrics(e2e.federationId, true);
    expect(perSite.filter((m) => m.site !== null)).toEqual([]);
    const global = await e2e.fed.metrics(e2e.federationId);
    const at = (round: number, name: string) =>
      global.find((m: MetricRecord) => m.round === round && m.name === name);
    // Round 0 measured the initial model (stored as round -1) and trained; round 1 measured round 0's model.
    for (const round of [0, 1]) expect(at(round, 'train_loss')?.value).toBeGreaterThan(0);
    expect(at(1, 'mae')).toBeUndefined();

    // Each site's own scores of those models, weighted by its training slices (its SecAgg weight).
    const d = await import('@fedsynth/diffusion');
    const weights = await Promise.all(
      e2e.dataDirs.map(async (dataDir) =>
        Math.min((await d.loadSliceDataset(dataDir, { size: SIZE })).train.length, MAX_WEIGHT),
      ),
    );
    const B = weights.reduce((a, w) => a + w, 0) / MAX_WEIGHT;
    // The resolution: 1.5 (hi - lo) |S| / ((Q - 1) B) per mean, a group figure divided by its share (1).
    const e = (range: number) =>
      (1.5 * range * 3) / ((LEVELS - 1) * (B - 3 / (LEVELS - 1))) + range * 2 ** -23;
    const bound = (range: number, worst: number) => (e(range) + worst * e(1)) / (1 - e(1));
    const seen: Record<string, unknown> = {};
    for (const [round, sha] of [
      [-1, checkpointIn(r0)],
      [0, r0.checkpointOut!],
    ] as const) {
      const scores = [];
      for (const site of SITES) scores.push(await siteScores(site, sha));
      for (const s of scores) expect(s.slices).toBeGreaterThan(0);
      const mean = (key: 'mae' | 'psnr' | 'ssim') =>
        scores.reduce((a, s, k) => a + weights[k] * s[key], 0) / weights.reduce((a, w) => a + w, 0);
      // The command prints MAE to 0.01 HU, PSNR to 0.001 dB, SSIM to 0.0001.
      expect(Math.abs(at(round, 'mae')!.value - mean('mae'))).toBeLessThanOrEqual(
        bound(4024, 4024) + 0.005 + 1e-3,
      );
      expect(Math.abs(at(round, 'psnr')!.value - mean('psnr'))).toBeLessThanOrEqual(
        bound(100, 100) + 5e-4 + 1e-4,
      );
      expect(Math.abs(at(round, 'ssim')!.value - mean('ssim'))).toBeLessThanOrEqual(
        bound(2, 1) + 5e-5 + 1e-5,
      );
      seen[round] = {
        mae: at(round, 'mae')!.value,
        maeBound: at(round, 'mae_bound')!.value,
        reference: mean('mae'),
        sites: scores.map((s) => s.mae),
        weights,
      };
    }
    console.info(`secure metrics, global MAE vs the sites' own: ${JSON.stringify(seen)}`);
  }, 600_000);
});
