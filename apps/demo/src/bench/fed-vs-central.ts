import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProgress, type FlagSpec, numFlag, parseFlags, runCli, usage } from '@fedsynth/cli-kit';
import { type SlicePair } from '@fedsynth/imaging';
import { LocalFederation, writeSitePhantoms } from '../local-federation';

const FLAGS: Record<string, FlagSpec> = {
  sites: { type: 'string', valueName: 'n', description: 'sites', default: '3' },
  rounds: { type: 'string', valueName: 'n', description: 'federated rounds', default: '5' },
  steps: { type: 'string', valueName: 'n', description: 'local steps per site per round', default: '30' },
  size: { type: 'string', valueName: 'px', description: 'model input size', default: '32' },
  subjects: { type: 'string', valueName: 'n', description: 'phantom subjects per site', default: '6' },
  batch: { type: 'string', valueName: 'n', description: 'batch size (both)', default: '8' },
  lr: { type: 'string', valueName: 'x', description: 'learning rate (both)', default: '0.001' },
};
const HELP = usage(
  'npm run bench:fed-vs-central --',
  '[--sites 3] [--rounds 5] [--steps 30] [--size 32]',
  'Trains the same phantom data from the same initial model with the same number of gradient steps\n' +
    "(rounds x steps x sites) and batch size twice: centrally on the union of the sites' training\n" +
    'subjects (libs/diffusion trainer), and federated (coordinator + agent processes, secure\n' +
    "aggregation). Both final models are scored on the union of the sites' validation subjects the\n" +
    'same way. Prints, last, one JSON object with both results and the gaps.',
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fed-vs-central', HELP, async () => {
    const { values: v } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const sites = numFlag(v, 'sites', 3, 20, 3);
    const rounds = numFlag(v, 'rounds', 1, 1000, 5);
    const steps = numFlag(v, 'steps', 1, 100_000, 30);
    const size = numFlag(v, 'size', 16, 256, 32);
    const subjects = numFlag(v, 'subjects', 2, 1000, 6);
    const batch = numFlag(v, 'batch', 1, 256, 8);
    const lr = numFlag(v, 'lr', 1e-6, 0.1, 1e-3, false);
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-fvc-'));
    const d = await import('@fedsynth/diffusion');
    await d.selectBackend(process.env.FEDSYNTH_BACKEND as never);
    try {
      const dataDirs = await writeSitePhantoms(
        join(dir, 'data'),
        Array.from({ length: sites }, (_, s) => `site-${s + 1}`),
        { seed: 300, subjects, size: size * 2 },
      );
      const plan = { prediction: 'sample' as const, schedule: 'cosine' as const };
      const initial = await d.createInitialModel({
        size,
        channels: [16, 32, 64],
        numResBlocks: 1,
        ...plan,
        seed: 7,
      });
      // The same split as the agents make: each site's folder split by subject on its own.
      const train: SlicePair[] = [];
      const val: SlicePair[] = [];
      for (const dd of dataDirs) {
        const ds = await d.loadSliceDataset(dd, { size });
        train.push(...ds.train);
        val.push(...ds.val);
      }
      const evaluate = async (bytes: Uint8Array) => {
        const { model } = d.decodeModel(bytes, 'model');
        const r = await d.evaluateSlices(model, val, {
          schedule: d.makeSchedule(plan.schedule, 1000),
          prediction: plan.prediction,
          steps: 10,
          seed: 1234,
        });
        model.dispose();
        return { mae: r.mae, psnr: r.psnr, ssim: r.ssim, slices: r.slices };
      };
      const totalSteps = rounds * steps * sites;

      log(`central: ${totalSteps} steps on ${train.length} slices from ${sites} sites ...`);
      let t0 = Date.now();
      const { model } = d.decodeModel(initial, 'initial');
      const trainer = new d.Trainer(model, {
        ...plan,
        optimizer: { ...d.DEFAULT_OPTIMIZER, lr },
        emaDecay: 0,
        seed: 1,
      });
      const sampler = new d.BatchSampler(train, batch, 1);
      const bar = createProgress('central training', totalSteps);
      for (let s = 0; s < totalSteps; s++)
        bar.tick(s + 1, { loss: (await trainer.step(sampler.next())).loss });
      bar.done();
      const centralBytes = await d.encodeModel(model, { size: String(size), ...plan });
      trainer.dispose();
      model.dispose();
      const central = {
        ...(await evaluate(centralBytes)),
        steps: totalSteps,
        seconds: (Date.now() - t0) / 1000,
      };
      log(`central: MAE ${central.mae.toFixed(1)} HU in ${central.seconds.toFixed(0)} s`);

      log(`federated: ${rounds} rounds x ${steps} steps x ${sites} sites ...`);
      t0 = Date.now();
      const fed = new LocalFederation({ dir: join(dir, 'fed'), retrySeconds: 2 });
      let federated: Record<string, number>;
      try {
        await fed.startCoordinator();
        const f = await fed.createFederation('fed-vs-central', {
          model: { size, channels: [16, 32, 64], numResBlocks: 1 },
          plan: { localSteps: steps, batchSize: batch, lr, ...plan, minSites: sites, waitSeconds: 300 },
          secagg: { clip: 0.1, levels: 65536, maxWeight: 100_000 },
        });
        await fed.uploadModel(f.id, initial);
        await Promise.all(dataDirs.map((dd, s) => fed.addSite(f.id, `site-${s + 1}`, dd)));
        await fed.api('POST', `/api/federations/${f.id}/start`);
        await fed.waitForRounds(f.id, rounds, {
          timeoutMs: 3 * 60 * 60_000,
          onRound: (r) => void log(`  round ${r.number}: ${r.stage}${r.error ? ` (${r.error})` : ''}`),
        });
        await fed.api('POST', `/api/federations/${f.id}/pause`);
        const info = await fed.api<{ currentCheckpoint: string }>('GET', `/api/federations/${f.id}`);
        const bytes = await fed.api<Uint8Array>('GET', `/api/checkpoints/${info.currentCheckpoint}`);
        const seconds = (Date.now() - t0) / 1000;
        await fed.stop();
        federated = { ...(await evaluate(bytes)), steps: totalSteps, seconds };
      } finally {
        fed.killAll();
      }
      log(`federated: MAE ${federated.mae.toFixed(1)} HU in ${federated.seconds.toFixed(0)} s`);
      const out = {
        sites,
        rounds,
        localSteps: steps,
        batch,
        lr,
        size,
        validationSlices: val.length,
        central,
        federated,
        gap: {
          maeHU: federated.mae - central.mae,
          psnrDb: federated.psnr - central.psnr,
          ssim: federated.ssim - central.ssim,
          maeRatio: federated.mae / central.mae,
        },
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return 0;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

if (require.main === module) void main(process.argv.slice(2));
