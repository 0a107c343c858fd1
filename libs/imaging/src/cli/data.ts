import { resolve } from 'node:path';
import { createProgress, type FlagSpec, parseFlags, runCli, UsageError, usage } from '@fedsynth/cli-kit';
import { checkDataset, checkTaskDataset } from '../data-check';
import { parseTask } from '../task';

const FLAGS: Record<string, FlagSpec> = {
  source: {
    type: 'string',
    valueName: 'name',
    description: 'file name of the source modality',
    default: 'mr',
  },
  target: {
    type: 'string',
    valueName: 'name',
    description: 'file name of the target modality',
    default: 'ct',
  },
  mask: { type: 'string', valueName: 'name', description: 'file name of the body mask', default: 'mask' },
  task: {
    type: 'string',
    valueName: 'task',
    description:
      'check for a task instead, e.g. t1+t2-to-ct or pet-to-mr: every modality it needs, as files (t1.nii.gz, t1w.nii.gz, ...) or DICOM series, on one grid',
  },
  json: { type: 'boolean', description: 'print the report as JSON' },
};
const HELP = usage(
  'fedsynth-data',
  'check DIR [flags]',
  "Checks a SynthRAD2023-layout dataset (<subject>/mr.nii.gz, ct.nii.gz, mask.nii.gz), or with\n--task the modalities a task needs (NIfTI files or DICOM series, symbolic links followed): lists\nsubjects, shapes, spacing and value ranges, and reports problems, one line each naming the file:\nmissing modalities or unreadable files, zero dims, NaN or infinite voxels, bad spacing or affine,\nshape or geometry mismatch between a subject's volumes, a CT not in Hounsfield units, a PET\nwithout weight and dose. Exits 1 when it finds any, or no subjects.",
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-data', HELP, async () => {
    const { values, positionals } = parseFlags(argv, FLAGS, true);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const [command, dir, ...extra] = positionals;
    if (command !== 'check')
      throw new UsageError(command ? `unknown command "${command}"` : 'a command is required');
    if (!dir) throw new UsageError('check needs the dataset folder');
    if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    let bar: ReturnType<typeof createProgress> | undefined;
    const progress = (d: number, t: number) => {
      bar ??= createProgress('checking', t);
      bar.tick(d);
    };
    let task: ReturnType<typeof parseTask> | undefined;
    if (values.task !== undefined) {
      try {
        task = parseTask(String(values.task));
      } catch (err) {
        throw new UsageError(`--task: ${(err as Error).message}`);
      }
    }
    const report = task
      ? await checkTaskDataset(resolve(dir), task, {}, progress)
      : await checkDataset(
          resolve(dir),
          {
            source: String(values.source ?? 'mr'),
            target: String(values.target ?? 'ct'),
            mask: String(values.mask ?? 'mask'),
          },
          progress,
        );
    bar?.done();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const rows = report.subjects.map((s) => {
        const geo = s.dims
          ? `${s.dims.join('x')} @ ${s.spacing!.map((v) => v.toFixed(2)).join('x')} mm`
          : '-';
        const rng = (r?: [number, number]) => (r ? `[${r[0].toFixed(0)}, ${r[1].toFixed(0)}]` : '-');
        return `${s.id.padEnd(24)} ${geo.padEnd(32)} source ${rng(s.sourceRange).padEnd(16)} target ${rng(s.targetRange).padEnd(16)} mask ${s.hasMask ? 'yes' : 'no '}${s.problems.map((p) => `\n    problem: ${p}`).join('')}`;
      });
      const verdict =
        report.subjects.length === 0
          ? `no subjects found (expected <subject>/${task ? `<${[...task.sources, task.target].join('|')}>` : (values.source ?? 'mr')}.nii.gz${task ? ' or DICOM series' : ` and ${values.target ?? 'ct'}.nii.gz`})`
          : report.problemCount
            ? `${report.problemCount} problem(s) found`
            : 'no problems found';
      process.stdout.write(
        `${report.subjects.length} subjects in ${report.dir}\n${rows.map((r) => `${r}\n`).join('')}${verdict}\n`,
      );
    }
    // An empty folder is a failed check: nothing there could be trained on.
    return report.problemCount > 0 || report.subjects.length === 0 ? 1 : 0;
  });
}
