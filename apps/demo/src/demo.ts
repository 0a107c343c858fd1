import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type FlagSpec, numFlag, parseFlags, runCli, UsageError, usage } from '@fedsynth/cli-kit';
import {
  computeIntensityMetrics,
  computeMetrics,
  ctGrey,
  formatTask,
  kindOf,
  normalizeTaskSubject,
  parseTask,
  readTaskSubject,
  scanTaskSubjects,
  sideBySide,
  stretchGrey,
  type TaskSpec,
  taskModalities,
  unitToHu,
  unitToNative,
  withColourBar,
  writeNifti,
  writePhantomDataset,
  writePng,
} from '@fedsynth/imaging';
import {
  LocalFederation,
  type MetricRecord,
  type RoundRecord,
  SITE_PHANTOM_PROFILES,
  writeSitePhantoms,
} from './local-federation';

const FLAGS: Record<string, FlagSpec> = {
  sites: { type: 'string', valueName: 'n', description: 'sites (agent processes)', default: '3' },
  rounds: { type: 'string', valueName: 'n', description: 'training rounds', default: '6' },
  size: {
    type: 'string',
    valueName: 'px',
    description: 'model input size (slices are resampled)',
    default: '32',
  },
  steps: {
    type: 'string',
    valueName: 'n',
    description: 'local training steps per site per round',
    default: '40',
  },
  subjects: { type: 'string', valueName: 'n', description: 'phantom subjects per site', default: '6' },
  task: {
    type: 'string',
    valueName: 'task',
    description:
      'what to learn: <source>[+<source>]-to-<target>[:2.5d=k][:mr=landmarks] of mr, t1, t2, flair, pet, ct, e.g. t1-to-flair, pet-to-mr, t1+t2-to-ct, mr-to-ct:mr=landmarks (MR standardized by histogram landmarks instead of percentiles)',
    default: 'mr-to-ct',
  },
  out: {
    type: 'string',
    valueName: 'dir',
    description: 'output folder (replaced on each run)',
    default: 'demo-output',
  },
  'database-url': {
    type: 'string',
    valueName: 'url',
    description: 'PostgreSQL URL for the coordinator (default: the embedded database)',
  },
};
const HELP = usage(
  'npm run demo --',
  '[--task mr-to-ct] [--sites 3] [--rounds 6] [--size 32] [--steps 40] [--out demo-output]',
  'A whole federation on this machine: a coordinator on the embedded database, phantom data (the\n' +
    "task's modalities) for each site with a different scanner profile, one agent process per site\n" +
    'that enrolls itself, securely aggregated rounds with a live table, then the final model, a\n' +
    'synthetic target image for a held-out phantom and a report.',
  FLAGS,
);

const MARKER = '.fedsynth-demo';

interface Row {
  round: number;
  sites: number;
  dropouts: number;
  loss: number | null;
  mae: number | null;
  psnr: number | null;
  ssim: number | null;
  seconds: number;
  stage: string;
}

const columns = (ct: boolean) => [
  'round',
  'sites',
  'dropouts',
  'loss',
  ct ? 'MAE HU' : 'MAE',
  'PSNR dB',
  'SSIM',
  'seconds',
];

function fmt(r: Row, maeDigits = 1): string[] {
  const n = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));
  return [
    String(r.round),
    String(r.sites),
    String(r.dropouts),
    n(r.loss, 4),
    n(r.mae, maeDigits),
    n(r.psnr, 2),
    n(r.ssim, 3),
    r.seconds.toFixed(0) + (r.stage === 'completed' ? '' : ` (${r.stage})`),
  ];
}

function rowOf(r: RoundRecord, metrics: MetricRecord[]): Row {
  const m = (name: string) =>
    metrics.find((x) => x.round === r.number && x.site === null && x.name === name)?.value ?? null;
  return {
    round: r.number,
    sites: (r.participants?.length ?? 0) - (r.dropouts?.length ?? 0),
    dropouts: r.dropouts?.length ?? 0,
    loss: m('train_loss'),
    mae: m('mae'),
    psnr: m('psnr'),
    ssim: m('ssim'),
    seconds: r.finishedAt ? (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000 : 0,
    stage: r.stage,
  };
}

/** Prepares the output folder: refuses to empty a folder the demo did not make. */
function prepareOut(out: string): void {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!existsSync(join(out, MARKER)))
      throw new UsageError(`${out} exists and was not made by the demo; choose another --out`);
    rmSync(out, { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, MARKER), 'made by fedsynth-demo; replaced on the next run\n');
}

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-demo', HELP, async () => {
    const { values: v } = parseFlags(argv, FLAGS);
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const sites = numFlag(v, 'sites', 3, 50, 3);
    const rounds = numFlag(v, 'rounds', 1, 1000, 6);
    const size = numFlag(v, 'size', 16, 256, 32);
    if (size % 8 !== 0) throw new UsageError('--size must be a multiple of 8');
    const steps = numFlag(v, 'steps', 1, 100_000, 40);
    const subjects = numFlag(v, 'subjects', 2, 1000, 6);
    let task: TaskSpec;
    try {
      task = parseTask(String(v.task ?? 'mr-to-ct'));
    } catch (err) {
      throw new UsageError(`--task: ${(err as Error).message}`);
    }
    const targetKind = kindOf(task.target);
    const isCt = targetKind === 'ct';
    const COLUMNS = columns(isCt);
    // MAE in HU for CT; on the normalized 0..1 scale for MR and PET targets.
    const maeDigits = isCt ? 1 : 4;
    const maeText = (x: number) => (isCt ? `${x.toFixed(1)} HU` : x.toFixed(4));
    const T = task.target.toUpperCase();
    const S = task.sources.map((m) => m.toUpperCase()).join(' + ');
    const modalities = taskModalities(task);
    const out = resolve(String(v.out ?? 'demo-output'));
    prepareOut(out);
    const t0 = Date.now();
    const say = (s: string) => process.stdout.write(`${s}\n`);
    const profiles = SITE_PHANTOM_PROFILES;

    say(
      `fedsynth demo: ${formatTask(task)}, ${sites} sites x ${subjects} phantom subjects, ${rounds} rounds of ${steps} local steps at ${size}x${size}`,
    );
    say(`working folder ${out} (coordinator and agent logs in work/)`);
    const work = join(out, 'work');
    const dataDirs = await writeSitePhantoms(
      join(work, 'data'),
      Array.from({ length: sites }, (_, s) => `site-${s + 1}`),
      { seed: 100, subjects, size: size * 2, modalities },
    );
    const holdoutDir = join(work, 'data', 'held-out');
    const [holdoutId] = await writePhantomDataset({
      out: holdoutDir,
      subjects: 1,
      seed: 999,
      profile: profiles[0],
      size: size * 2,
      modalities,
    });
    say(
      `phantoms written (${profiles.slice(0, sites).join(', ')}${sites > profiles.length ? ', ...' : ''}) and one held-out subject`,
    );

    const fed = new LocalFederation({
      dir: work,
      databaseUrl: v['database-url'] as string | undefined,
      stageSeconds: 60,
      trainSeconds: 900,
      retrySeconds: 2,
    });
    const cleanup = () => fed.killAll();
    process.once('exit', cleanup);
    process.once('SIGINT', () => {
      cleanup();
      process.exit(130);
    });
    try {
      await fed.startCoordinator();
      say(
        `coordinator at ${fed.url} (embedded database unless --database-url; API docs at ${fed.url}/api/docs)`,
      );
      const federation = await fed.createFederation('demo', {
        task,
        model: { size, channels: [16, 32, 64], numResBlocks: 1 },
        plan: {
          localSteps: steps,
          batchSize: 8,
          lr: 1e-3,
          prediction: 'sample',
          minSites: sites,
          waitSeconds: 300,
        },
        secagg: { clip: 0.1, levels: 65536, maxWeight: 100_000 },
      });
      await Promise.all(dataDirs.map((d, s) => fed.addSite(federation.id, `hospital-${s + 1}`, d)));
      say(`${sites} agents enrolled themselves and were approved; starting the federation`);
      await fed.api('POST', `/api/federations/${federation.id}/start`);
      const widths = [5, 5, 8, 8, 8, 8, 6, 10];
      const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
      say('');
      say(line(COLUMNS));
      const table: Row[] = [];
      const sampled: number[] = [];
      await fed.waitForRounds(federation.id, rounds, {
        timeoutMs: 60 * 60_000,
        maxFailures: 5,
        onRound: async (r) => {
          const row = rowOf(r, await fed.metrics(federation.id));
          table.push(row);
          // The coordinator's sample of this round's model (its own phantom, never site data).
          if (r.stage === 'completed' && r.checkpointOut) {
            try {
              const png = await fed.api<Uint8Array>(
                'GET',
                `/api/federations/${federation.id}/sample?checkpoint=${r.modelOut ?? r.checkpointOut}`,
              );
              await writeFile(join(out, `round-${r.number}.png`), png);
              sampled.push(r.number);
            } catch (err) {
              say(`  (no sample for round ${r.number}: ${(err as Error).message})`);
            }
          }
          say(line(fmt(row, maeDigits)) + (r.error ? `  ${r.error}` : ''));
        },
      });
      await fed.api('POST', `/api/federations/${federation.id}/pause`);
      const f = await fed.api<{ currentCheckpoint: string; currentModel: string | null }>(
        'GET',
        `/api/federations/${federation.id}`,
      );
      // The published model: the server's moving average where the plan keeps one.
      const model = await fed.api<Uint8Array>(
        'GET',
        `/api/checkpoints/${f.currentModel ?? f.currentCheckpoint}`,
      );
      await writeFile(join(out, 'model.safetensors'), model);
      const lastMetrics = await fed.metrics(federation.id);
      await fed.stop();

      // The task's target for the held-out phantom with the final global model.
      say(
        `\nsynthesizing ${task.target.toUpperCase()} for the held-out phantom with the final global model ...`,
      );
      const d = require('@fedsynth/diffusion') as typeof import('@fedsynth/diffusion');
      await d.selectBackend(process.env.FEDSYNTH_BACKEND as never);
      const { model: unet, metadata } = d.decodeModel(model, 'final model');
      const [files] = (await scanTaskSubjects(holdoutDir, task)).subjects;
      const subject = await readTaskSubject(files, task);
      const norm = normalizeTaskSubject(subject, task);
      const unit = await d.synthesizeTask(unet, norm, task, {
        size: Number(metadata.size ?? size),
        prediction: (metadata.prediction ?? 'sample') as 'sample',
        schedule: (metadata.schedule ?? 'cosine') as 'cosine',
        steps: 25,
        batch: 8,
        seed: 0,
        // The federation has stopped: every core is free.
        threads: d.defaultThreads(),
      });
      unet.dispose();
      const ref = subject.volumes[task.target]!;
      const synthName = `synthetic-${task.target}.nii.gz`;
      await writeNifti(
        join(out, synthName),
        { ...ref, data: unitToNative(targetKind, unit) },
        { datatype: isCt ? 'int16' : 'float32' },
      );
      const held = isCt
        ? computeMetrics(unitToHu(unit), unitToHu(norm.target), { dims: ref.dims, mask: norm.mask })
        : computeIntensityMetrics(
            Float32Array.from(unit, (x) => (x + 1) / 2),
            Float32Array.from(norm.target, (x) => (x + 1) / 2),
            ref.dims,
            norm.mask,
          );
      const [nx, ny, nz] = ref.dims;
      const z = Math.floor(nz / 2);
      const px = nx * ny;
      const grey = (u: Float32Array) =>
        isCt ? Float32Array.from(unitToHu(u), ctGrey) : Float32Array.from(u, (x) => ((x + 1) / 2) * 255);
      // At least 256 px a panel (nearest neighbour), and a bar with the window of the last two panels.
      const panels = sideBySide(
        [
          stretchGrey(norm.sources[0].subarray(z * px, (z + 1) * px)),
          grey(unit.subarray(z * px, (z + 1) * px)),
          grey(norm.target.subarray(z * px, (z + 1) * px)),
        ],
        nx,
        ny,
        { gap: 8, scale: Math.max(1, Math.ceil(256 / Math.max(nx, ny))) },
      );
      const s = isCt ? withColourBar(panels, -1000, 1500) : withColourBar(panels, 0, 1, { digits: 1 });
      await writePng(join(out, 'strip.png'), s.data, s.width, s.height, 8);

      const minutes = (Date.now() - t0) / 60_000;
      // Memorization check of the last round: computed at each site, only the means left it.
      const lastRound = Math.max(-1, ...lastMetrics.map((m) => m.round));
      const g = (name: string) =>
        lastMetrics.find((m) => m.round === lastRound && m.site === null && m.name === name)?.value;
      const memo =
        g('memorization_ratio') !== undefined
          ? `Memorization check (round ${lastRound}): synthesized validation slices lie ${g('nearest_synth')!.toFixed(3)} (RMS, model scale) from the nearest training slice at their site, real validation slices ${g('nearest_real')!.toFixed(3)}: ratio ${g('memorization_ratio')!.toFixed(2)} (about 1: the model does not reproduce training images).`
          : '';
      const first = table.find((r) => r.stage === 'completed' && r.mae !== null);
      const last = [...table].reverse().find((r) => r.stage === 'completed' && r.mae !== null);
      const md = [
        '# fedsynth demo report',
        '',
        `Task ${formatTask(task)} (${S} -> ${T}). ${sites} sites (phantoms, scanner profiles ${profiles.slice(0, sites).join(', ')}), ${subjects} subjects each;`,
        `${rounds} securely aggregated FedAvg rounds of ${steps} local steps (batch 8) at ${size}x${size};`,
        `U-Net channels 16/32/64, 1 residual block per level, x0 prediction. Wall time ${minutes.toFixed(1)} min.`,
        '',
        "Validation figures are the sites' own scores of each new global model on their validation",
        `subjects (DDIM 10 steps, ${isCt ? 'HU' : `${T} normalized to 0..1 (data range 1)`} inside the body mask), weighted by slices.`,
        '',
        `| ${COLUMNS.join(' | ')} |`,
        `|${COLUMNS.map(() => '---').join('|')}|`,
        ...table.map((r) => `| ${fmt(r, maeDigits).join(' | ')} |`),
        '',
        first && last
          ? `Validation MAE went from ${maeText(first.mae!)} after round ${first.round} to ${maeText(last.mae!)} after round ${last.round}.`
          : '',
        '',
        `Held-out phantom (${holdoutId}), whole volume, DDIM 25 steps: MAE ${maeText(held.mae)}, PSNR ${held.psnr.toFixed(2)} dB, SSIM ${held.ssim.toFixed(3)}.`,
        '',
        memo,
        '',
        ...(sampled.length
          ? [
              'The global model after each round, on a phantom the coordinator generates itself',
              `(${task.sources[0].toUpperCase()} | synthetic ${T} | ${T}):`,
              '',
              ...sampled.map((n) => `Round ${n}:\n\n![round ${n}](round-${n}.png)\n`),
            ]
          : []),
        `![${task.sources[0].toUpperCase()} | synthetic ${T} | ${T}](strip.png)`,
        '',
        `Files: \`model.safetensors\` (final global model), \`${synthName}\` (held-out phantom),`,
        `\`strip.png\` (middle slice: ${task.sources[0].toUpperCase()} | synthetic ${T} | ${T}), \`work/\` (data, coordinator and agent logs,`,
        "each agent's audit log of everything it sent).",
        '',
      ].join('\n');
      await writeFile(join(out, 'report.md'), md);
      say(
        `held-out phantom: MAE ${maeText(held.mae)}, PSNR ${held.psnr.toFixed(2)} dB, SSIM ${held.ssim.toFixed(3)}\n` +
          `\nwrote ${join(out, 'model.safetensors')}\n      ${join(out, synthName)}\n      ${join(out, 'strip.png')}\n      ${join(out, 'report.md')}\n` +
          `done in ${minutes.toFixed(1)} min`,
      );
      return 0;
    } finally {
      fed.killAll();
    }
  });
}
