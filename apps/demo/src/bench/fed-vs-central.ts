import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createProgress,
  type FlagSpec,
  numFlag,
  parseFlags,
  runCli,
  UsageError,
  usage,
} from '@fedsynth/cli-kit';
import {
  conditionChannels,
  DEFAULT_TASK,
  formatTask,
  kindOf,
  parseTask,
  type SlicePair,
  type TaskSpec,
  taskModalities,
} from '@fedsynth/imaging';
import { LocalFederation, SITE_PHANTOM_PROFILES, writeSitePhantoms } from '../local-federation';
import { COMPARE_SET, parseVariant, type StrategyVariant } from './strategy-spec';

const FLAGS: Record<string, FlagSpec> = {
  sites: {
    type: 'string',
    valueName: 'n',
    description: 'sites (with --leave-out: sites in all, one of them left out)',
    default: '3, or 4 with --leave-out',
  },
  rounds: { type: 'string', valueName: 'n', description: 'federated rounds', default: '5' },
  steps: { type: 'string', valueName: 'n', description: 'local steps per site per round', default: '30' },
  size: { type: 'string', valueName: 'px', description: 'model input size', default: '32' },
  subjects: { type: 'string', valueName: 'n', description: 'phantom subjects per site', default: '6' },
  batch: { type: 'string', valueName: 'n', description: 'batch size (both)', default: '8' },
  lr: { type: 'string', valueName: 'x', description: 'learning rate (both)', default: '0.002' },
  task: {
    type: 'string',
    valueName: 'task',
    description:
      'what both models learn: <source>[+<source>]-to-<target>[:2.5d=k][:mr=landmarks] of mr, t1, t2, flair, pet, ct, e.g. t1-to-flair, pet-to-mr, t1+t2-to-ct, mr-to-ct:mr=landmarks (MR standardized by histogram landmarks instead of percentiles)',
    default: 'mr-to-ct',
  },
  strategy: {
    type: 'string',
    valueName: 'spec',
    multiple: true,
    description:
      'a federated variant: fedavg|fedavgm|fedadam|fedyogi|fedprox|scaffold[:key=value,...], keys lr, momentum, beta1, beta2, tau, mu (proximal term), ema=<local EMA decay>, cosine=<final lr factor>, keepopt=0|1 (whether sites keep the Adam state across rounds; 1 by default), locallr=<the sites lr>, rounds=<n> or <k>x (same total steps); each is trained and scored',
    default: "the federation's default plan (fedavg)",
  },
  'server-ema': {
    type: 'string',
    valueName: 'decay',
    description:
      "every variant's federation keeps a server moving average of the global model with this decay (strategy.serverEma); both its last checkpoint and the average are scored",
  },
  compare: {
    type: 'boolean',
    description: `runs the comparison set: ${COMPARE_SET.join(' ')}`,
  },
  'leave-out': {
    type: 'string',
    valueName: 'site',
    description:
      'leave this site (site-1 ... site-n, or a scanner profile site-a/b/c that only one site has) out of both trainings; both models are also scored on all of its subjects',
  },
};

/**
 * What a model scores on a set of slices: MAE (in HU for a CT target, on the normalized 0..1 scale
 * for MR and PET targets), PSNR in dB, SSIM.
 */
interface Scores {
  mae: number;
  psnr: number;
  ssim: number;
  slices: number;
}

/** Secure aggregation needs at least this many sites in a round. */
const MIN_FEDERATED_SITES = 3;

const siteName = (k: number) => `site-${k + 1}`;
const profileOf = (k: number) => SITE_PHANTOM_PROFILES[k % SITE_PHANTOM_PROFILES.length];

/**
 * The index of the site --leave-out names: a site name, or a scanner profile that exactly one of
 * the sites has; anything else is a usage error listing the sites.
 */
function resolveLeaveOut(raw: string, sites: number): number {
  const names = Array.from({ length: sites }, (_, k) => siteName(k));
  const byName = names.indexOf(raw);
  if (byName >= 0) return byName;
  const byProfile = names.map((_, k) => k).filter((k) => profileOf(k) === raw);
  if (byProfile.length === 1) return byProfile[0];
  const known = names.map((n, k) => `${n} (profile ${profileOf(k)})`).join(', ');
  const shared =
    byProfile.length > 1
      ? `; profile ${raw} is shared by ${byProfile.map(siteName).join(' and ')}, name one of them`
      : '';
  throw new UsageError(`--leave-out: unknown site "${raw}"${shared}; known sites: ${known}`);
}

const HELP = usage(
  'npm run bench:fed-vs-central --',
  '[--task mr-to-ct] [--sites 3] [--rounds 5] [--steps 30] [--size 32] [--leave-out site-3] [--strategy spec]... [--compare]',
  'Trains the same phantom data from the same initial model with the same number of gradient steps\n' +
    "(rounds x steps x sites) and batch size twice: centrally on the union of the sites' training\n" +
    'subjects (libs/diffusion trainer), and federated (coordinator + agent processes, secure\n' +
    "aggregation). Both final models are scored on the union of the sites' validation subjects the\n" +
    'same way. With --leave-out, that site takes no part in either training (no agent, no slices\n' +
    'pooled) and both models are also scored on all of its subjects, training and validation split,\n' +
    "as an unseen hospital. With --task, the phantoms have the task's modalities and both models learn\n" +
    'it (MAE in HU for a CT target, on the normalized 0..1 scale for MR and PET targets). With\n' +
    '--strategy (repeatable) or --compare, several federated variants (server strategy, FedProx,\n' +
    'local EMA, learning-rate schedule, rounds vs local steps) each train from the same initial model\n' +
    'with the same total gradient steps and are tabled against central. Prints a table, then, last,\n' +
    'one JSON object with the results and the gaps.',
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fed-vs-central', HELP, async () => {
    const { values: v, lists } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    let task: TaskSpec;
    try {
      task = parseTask(String(v.task ?? 'mr-to-ct'));
    } catch (err) {
      throw new UsageError(`--task: ${(err as Error).message}`);
    }
    const taskText = formatTask(task);
    // The task the bench started with keeps its output as it was; any other is named in the output.
    const isDefaultTask = taskText === formatTask(DEFAULT_TASK);
    const targetKind = kindOf(task.target);
    const isCt = targetKind === 'ct';
    const maeUnit = isCt ? 'HU' : 'normalized 0..1';
    const maeText = (x: number) => (isCt ? `${x.toFixed(1)} HU` : x.toFixed(4));
    const leaveOutRaw = v['leave-out'] === undefined ? undefined : String(v['leave-out']);
    const sites = numFlag(v, 'sites', 3, 20, leaveOutRaw === undefined ? 3 : MIN_FEDERATED_SITES + 1);
    if (leaveOutRaw !== undefined && sites - 1 < MIN_FEDERATED_SITES)
      throw new UsageError(
        `--leave-out needs --sites ${MIN_FEDERATED_SITES + 1} or more: ${MIN_FEDERATED_SITES} sites must still train (secure aggregation needs ${MIN_FEDERATED_SITES}), got --sites ${sites}`,
      );
    const leftOut = leaveOutRaw === undefined ? -1 : resolveLeaveOut(leaveOutRaw, sites);
    const trained = Array.from({ length: sites }, (_, k) => k).filter((k) => k !== leftOut);
    const rounds = numFlag(v, 'rounds', 1, 1000, 5);
    const steps = numFlag(v, 'steps', 1, 100_000, 30);
    const size = numFlag(v, 'size', 16, 256, 32);
    const subjects = numFlag(v, 'subjects', 2, 1000, 6);
    const batch = numFlag(v, 'batch', 1, 256, 8);
    const lr = numFlag(v, 'lr', 1e-6, 0.1, 2e-3, false);
    const specs = [...(v.compare ? COMPARE_SET : []), ...(lists.strategy ?? [])];
    const variants: StrategyVariant[] = (specs.length ? specs : ['fedavg']).map((s) =>
      parseVariant(s, rounds, steps),
    );
    const serverEma = v['server-ema'] === undefined ? 0 : numFlag(v, 'server-ema', 0, 0.9999, 0, false);
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-fvc-'));
    const d = await import('@fedsynth/diffusion');
    await d.selectBackend(process.env.FEDSYNTH_BACKEND as never);
    try {
      // Every site's data is made, the left-out one too, so that the others' data is the same as
      // in a run without --leave-out.
      const dataDirs = await writeSitePhantoms(
        join(dir, 'data'),
        Array.from({ length: sites }, (_, k) => siteName(k)),
        {
          seed: 300,
          subjects,
          size: size * 2,
          ...(isDefaultTask ? {} : { modalities: taskModalities(task) }),
        },
      );
      const plan = { prediction: 'sample' as const, schedule: 'cosine' as const };
      const initial = await d.createInitialModel({
        size,
        channels: [16, 32, 64],
        numResBlocks: 1,
        ...plan,
        seed: 7,
        ...(isDefaultTask ? {} : { task: taskText, conditionChannels: conditionChannels(task) }),
      });
      // The same split as the agents make: each site's folder split by subject on its own. The
      // left-out site's subjects, all of them, are only scored.
      const train: SlicePair[] = [];
      const val: SlicePair[] = [];
      const unseen: SlicePair[] = [];
      let unseenSubjects = 0;
      for (const [k, dd] of dataDirs.entries()) {
        const ds = isDefaultTask
          ? await d.loadSliceDataset(dd, { size })
          : await d.loadTaskDataset(dd, task, { size });
        if (k === leftOut) {
          unseen.push(...ds.train, ...ds.val);
          unseenSubjects = ds.trainSubjects.length + ds.valSubjects.length;
        } else {
          train.push(...ds.train);
          val.push(...ds.val);
        }
      }
      const trainedNames = trained.map(siteName);
      if (leftOut >= 0)
        log(
          `leaving out ${siteName(leftOut)} (profile ${profileOf(leftOut)}): ${unseen.length} slices from ${unseenSubjects} subjects, scored only; training on ${trainedNames.join(', ')}`,
        );
      const evaluate = async (bytes: Uint8Array, slices: SlicePair[] = val): Promise<Scores> => {
        const { model } = d.decodeModel(bytes, 'model');
        const r = await d.evaluateSlices(model, slices, {
          schedule: d.makeSchedule(plan.schedule, 1000),
          prediction: plan.prediction,
          steps: 10,
          seed: 1234,
          targetKind,
        });
        model.dispose();
        return { mae: r.mae, psnr: r.psnr, ssim: r.ssim, slices: r.slices };
      };
      const totalSteps = rounds * steps * trained.length;

      if (!isDefaultTask) log(`task ${taskText}: MAE in ${maeUnit}`);
      log(`central: ${totalSteps} steps on ${train.length} slices from ${trained.length} sites ...`);
      const t0 = Date.now();
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
      log(`central: MAE ${maeText(central.mae)} in ${central.seconds.toFixed(0)} s`);
      const centralUnseen = leftOut >= 0 ? await evaluate(centralBytes, unseen) : undefined;

      /** One federated training of the variant, scored like the central model. */
      const runFederated = async (variant: StrategyVariant, k: number) => {
        const vRounds = variant.rounds ?? rounds;
        const vSteps = (rounds * steps) / vRounds;
        log(`federated ${variant.label}: ${vRounds} rounds x ${vSteps} steps x ${trained.length} sites ...`);
        const t1 = Date.now();
        const fed = new LocalFederation({ dir: join(dir, `fed-${k}`), retrySeconds: 2 });
        try {
          await fed.startCoordinator();
          const f = await fed.createFederation(`fed-vs-central-${k}`, {
            ...(isDefaultTask ? {} : { task }),
            model: { size, channels: [16, 32, 64], numResBlocks: 1 },
            plan: {
              localSteps: vSteps,
              batchSize: batch,
              lr,
              ...plan,
              ...variant.plan,
              rounds: vRounds,
              minSites: trained.length,
              waitSeconds: 300,
            },
            strategy: { ...variant.strategy, ...(serverEma > 0 ? { serverEma } : {}) },
            secagg: { clip: 0.1, levels: 65536, maxWeight: 100_000 },
          });
          await fed.uploadModel(f.id, initial);
          await Promise.all(trained.map((j) => fed.addSite(f.id, siteName(j), dataDirs[j])));
          await fed.api('POST', `/api/federations/${f.id}/start`);
          await fed.waitForRounds(f.id, vRounds, {
            timeoutMs: 3 * 60 * 60_000,
            onRound: (r) => void log(`  round ${r.number}: ${r.stage}${r.error ? ` (${r.error})` : ''}`),
          });
          const info = await fed.api<{ currentCheckpoint: string; currentModel: string | null }>(
            'GET',
            `/api/federations/${f.id}`,
          );
          // The last checkpoint (what sites would train on from), and the server's moving average
          // where the federation keeps one (what it publishes).
          const bytes = await fed.api<Uint8Array>('GET', `/api/checkpoints/${info.currentCheckpoint}`);
          const emaBytes = info.currentModel
            ? await fed.api<Uint8Array>('GET', `/api/checkpoints/${info.currentModel}`)
            : undefined;
          const seconds = (Date.now() - t1) / 1000;
          await fed.stop();
          const scores = { ...(await evaluate(bytes)), steps: totalSteps, seconds };
          const unseenScores = leftOut >= 0 ? await evaluate(bytes, unseen) : undefined;
          log(`federated ${variant.label}: MAE ${maeText(scores.mae)} in ${seconds.toFixed(0)} s`);
          const ema = emaBytes
            ? {
                scores: { ...(await evaluate(emaBytes)), steps: totalSteps, seconds },
                ...(leftOut >= 0 ? { unseen: await evaluate(emaBytes, unseen) } : {}),
              }
            : undefined;
          if (ema)
            log(`federated ${variant.label} + server EMA ${serverEma}: MAE ${maeText(ema.scores.mae)}`);
          return {
            variant: variant.label,
            rounds: vRounds,
            localSteps: vSteps,
            scores,
            ...(unseenScores ? { unseen: unseenScores } : {}),
            ...(ema ? { serverEma: ema } : {}),
          };
        } finally {
          fed.killAll();
        }
      };
      const results = [];
      for (const [k, variant] of variants.entries()) results.push(await runFederated(variant, k));
      // The first variant is "the federated model" of the comparison (the default plan unless named).
      const federated = results[0].scores;
      const federatedUnseen = results[0].unseen;
      // A CT target's MAE keys say HU, as they always have; other targets' keys name no unit.
      const maeKey = isCt ? 'maeHU' : 'mae';
      const gapOf = (fedR: Scores, cenR: Scores) => ({
        [maeKey]: fedR.mae - cenR.mae,
        psnrDb: fedR.psnr - cenR.psnr,
        ssim: fedR.ssim - cenR.ssim,
        maeRatio: fedR.mae / cenR.mae,
      });
      const figures = (r: Scores) => `${maeText(r.mae)} / ${r.psnr.toFixed(1)} dB / ${r.ssim.toFixed(3)}`;
      const rows: [string, Scores, Scores][] = [
        [`validation of ${trainedNames.join(', ')} (${val.length} slices)`, central, federated],
      ];
      if (centralUnseen && federatedUnseen)
        rows.push([
          `left-out ${siteName(leftOut)}, all subjects (${unseen.length} slices)`,
          centralUnseen,
          federatedUnseen,
        ]);
      const w = Math.max(...rows.map((r) => r[0].length));
      log(
        [
          ...(isDefaultTask ? [] : [`task ${taskText}, MAE in ${maeUnit}`]),
          `${'scored on'.padEnd(w)}  ${'central (MAE / PSNR / SSIM)'.padEnd(30)}  federated (MAE / PSNR / SSIM)`,
          ...rows.map(([label, c, f]) => `${label.padEnd(w)}  ${figures(c).padEnd(30)}  ${figures(f)}`),
        ].join('\n'),
      );
      if (results.length > 1 || serverEma > 0) {
        // Every variant on the same validation slices (and the left-out site), against central.
        const lw = Math.max(8, ...results.map((r) => r.variant.length));
        const line = (name: string, rr: string, sc: Scores, u?: Scores, sec?: number) =>
          `${name.padEnd(lw)}  ${rr.padEnd(8)}  ${figures(sc).padEnd(30)}  ${(sc.mae / central.mae).toFixed(2).padStart(5)}` +
          `${u && centralUnseen ? `  ${figures(u).padEnd(30)}` : ''}${sec === undefined ? '' : `  ${sec.toFixed(0).padStart(5)} s`}`;
        log(
          [
            '',
            `${'variant'.padEnd(lw)}  ${'rounds'.padEnd(8)}  ${'validation (MAE / PSNR / SSIM)'.padEnd(30)}  ${'MAE/c'.padStart(5)}` +
              `${centralUnseen ? `  ${'left-out site'.padEnd(30)}` : ''}  time`,
            line('central', '-', central, centralUnseen, central.seconds),
            ...results.flatMap((r) => [
              line(r.variant, `${r.rounds}x${r.localSteps}`, r.scores, r.unseen, r.scores.seconds),
              ...(r.serverEma
                ? [line(`  + server EMA ${serverEma}`, '', r.serverEma.scores, r.serverEma.unseen)]
                : []),
            ]),
          ].join('\n'),
        );
      }
      const out = {
        ...(isDefaultTask ? {} : { task: taskText, maeUnit }),
        sites,
        ...(leftOut >= 0 ? { trainedSites: trainedNames } : {}),
        rounds,
        localSteps: steps,
        batch,
        lr,
        size,
        validationSlices: val.length,
        central,
        federated,
        gap: gapOf(federated, central),
        ...(results.length > 1 || serverEma > 0
          ? {
              ...(serverEma > 0 ? { serverEma } : {}),
              variants: results.map((r) => ({
                ...r,
                gap: gapOf(r.scores, central),
                ...(r.unseen && centralUnseen ? { unseenGap: gapOf(r.unseen, centralUnseen) } : {}),
              })),
            }
          : {}),
        ...(centralUnseen && federatedUnseen
          ? {
              // Both models on every subject of the site that took no part in training.
              leftOut: {
                site: siteName(leftOut),
                profile: profileOf(leftOut),
                subjects: unseenSubjects,
                slices: unseen.length,
                central: centralUnseen,
                federated: federatedUnseen,
                gap: gapOf(federatedUnseen, centralUnseen),
                // How much worse each model does on the unseen site than on the trained sites' validation.
                [isCt ? 'unseenMinusValidationMaeHU' : 'unseenMinusValidationMae']: {
                  central: centralUnseen.mae - central.mae,
                  federated: federatedUnseen.mae - federated.mae,
                },
              },
            }
          : {}),
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return 0;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

if (require.main === module) void main(process.argv.slice(2));
