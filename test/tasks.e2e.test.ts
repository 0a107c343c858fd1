import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePhantomSubject, writeDicomSeries } from '@fedsynth/imaging';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalFederation, type RoundRecord, writeSitePhantoms } from '../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from './tiny-federation';
import { until } from './until';

/**
 * A task with two source modalities (T1 + T2 -> CT) through real agent processes: two sites with
 * NIfTI files, one whose images are DICOM series in subfolders (found by series description), and
 * one without T2, which declines every round and says why.
 */
let dir: string;
let drop: () => Promise<void>;
let fed: LocalFederation;
let federationId: string;

/** A site whose subjects are DICOM series: `<subject>/<series folder>/*.dcm`, as scanners export. */
async function writeDicomSite(root: string, subjects: number): Promise<string> {
  for (let k = 0; k < subjects; k++) {
    const p = generatePhantomSubject({
      seed: 700 + k,
      profile: 'site-c',
      size: 32,
      slices: 8,
      modalities: ['t1', 't2', 'ct'],
    });
    const subject = join(root, `dicom-${k}`);
    const series: [string, 'MR' | 'CT', string, 't1' | 't2' | 'ct'][] = [
      ['s001_t1', 'MR', 'AX T1 SE', 't1'],
      ['s002_t2', 'MR', 'AX T2 TSE', 't2'],
      ['s003_ct', 'CT', 'HEAD 3mm', 'ct'],
    ];
    for (const [folder, modality, description, m] of series) {
      await mkdir(join(subject, folder), { recursive: true });
      await writeDicomSeries(p.volumes[m]!, join(subject, folder), {
        modality,
        seriesDescription: description,
        patientId: `dicom-${k}`,
      });
    }
  }
  return root;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-tasks-'));
  ({ fed, drop } = await startTestCoordinator(dir));
  const f = await fed.createFederation('t1t2-to-ct', {
    ...tinyFederation({ localSteps: 20, minSites: 4 }, { threatModel: 'honest-but-curious' }),
    task: { sources: ['t1', 't2'], target: 'ct', context: 0 },
  });
  federationId = f.id;
  const nifti = await writeSitePhantoms(join(dir, 'data'), ['site-1', 'site-2'], {
    seed: 30,
    subjects: 3,
    size: 32,
    modalities: ['t1', 't2', 'ct'],
  });
  const dicom = await writeDicomSite(join(dir, 'data', 'site-3'), 3);
  const [noT2] = await writeSitePhantoms(join(dir, 'data'), ['site-4'], {
    seed: 40,
    subjects: 2,
    size: 32,
    modalities: ['t1', 'ct'],
  });
  for (const [name, data] of [
    ['site-1', nifti[0]],
    ['site-2', nifti[1]],
    ['site-3', dicom],
    ['site-4', noT2],
  ])
    await fed.addSite(federationId, name, data);
  await fed.api('POST', `/api/federations/${federationId}/start`);
}, 300_000);

afterAll(async () => {
  fed?.killAll();
  await drop?.();
  if (!process.env.KEEP_E2E) rmSync(dir, { recursive: true, force: true });
});

describe('T1 + T2 -> CT through four agent processes', () => {
  it('three sites train (one of DICOM series), the one without T2 declines naming it, and MAE falls', async () => {
    const rounds = await fed.waitForRounds(federationId, 2, { timeoutMs: 280_000, maxFailures: 0 });
    const done = rounds
      .filter((r: RoundRecord) => r.stage === 'completed')
      .sort((a: RoundRecord, b: RoundRecord) => a.number - b.number);
    const story = JSON.stringify(rounds.map((r) => [r.number, r.stage, r.error, r.participants, r.dropouts]));
    expect(done.length, story).toBeGreaterThanOrEqual(2);
    for (const r of done.slice(0, 2)) {
      // Four chosen, one declined: three updates aggregated.
      expect((r.participants?.length ?? 0) - (r.dropouts?.length ?? 0), story).toBe(3);
    }
    const status = await until(
      "site-4's status to record its decline",
      async () => {
        const s = JSON.parse(readFileSync(join(dir, 'work', 'sites', 'site-4', 'status.json'), 'utf8'));
        return s.lastRound?.outcome === 'declined' ? s : undefined;
      },
      60_000,
    );
    expect(status.lastRound.reason).toBe("the site's data has no t2 (the task t1+t2-to-ct needs t1, t2, ct)");
    const metrics = await fed.metrics(federationId);
    const mae = (n: number) => metrics.find((m) => m.round === n && m.site === null && m.name === 'mae');
    const all = JSON.stringify(metrics.filter((m) => m.site === null));
    console.info(
      `T1+T2 -> CT validation MAE (HU) after round 0: ${mae(0)?.value.toFixed(1)}, after round 1: ${mae(1)?.value.toFixed(1)}`,
    );
    expect(mae(0)?.count, all).toBeGreaterThan(0);
    expect(mae(1)!.value, all).toBeLessThan(mae(0)!.value);
    // The memorization check reached the coordinator as means only: a positive global ratio.
    const ratio = metrics.find((m) => m.round === 1 && m.site === null && m.name === 'memorization_ratio');
    expect(ratio?.value, all).toBeGreaterThan(0);
    // The DICOM site trained: its agent log shows the local training of the rounds.
    const log3 = readFileSync(join(dir, 'work', 'sites', 'site-3', 'agent.log'), 'utf8');
    expect(log3).toMatch(/local training done/);
  }, 300_000);
});
