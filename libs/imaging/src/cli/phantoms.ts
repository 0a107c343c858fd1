import { resolve } from 'node:path';
import {
  createProgress,
  type FlagSpec,
  numFlag,
  parseFlags,
  runCli,
  UsageError,
  usage,
} from '@fedsynth/cli-kit';
import { SITE_PROFILES, writePhantomDataset } from '../phantom';

const FLAGS: Record<string, FlagSpec> = {
  subjects: { type: 'string', valueName: 'n', description: 'number of subjects to write', default: '20' },
  out: {
    type: 'string',
    valueName: 'dir',
    description: 'output folder (SynthRAD2023 layout: <id>/mr.nii.gz, ct.nii.gz, mask.nii.gz)',
  },
  seed: {
    type: 'string',
    valueName: 'n',
    description: 'random seed; the same seed writes the same subjects',
    default: '1',
  },
  profile: {
    type: 'string',
    valueName: 'name',
    description: `scanner profile: ${Object.keys(SITE_PROFILES).join(', ')}`,
    default: 'site-a',
  },
  size: { type: 'string', valueName: 'px', description: 'in-plane size in voxels', default: '128' },
  slices: { type: 'string', valueName: 'n', description: 'axial slices per subject (default: size / 4)' },
  anatomy: {
    type: 'string',
    valueName: 'head|pelvis|mixed',
    description: 'anatomy of the subjects',
    default: 'mixed',
  },
};
const HELP = usage(
  'fedsynth-phantoms',
  '--out DIR [flags]',
  'Writes paired MRI/CT phantoms (random head and pelvis anatomies, spin-echo MRI, CT in HU)\nin the SynthRAD2023 layout, for demos and tests when no patient data may be used.',
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-phantoms', HELP, async () => {
    const { values } = parseFlags(argv, FLAGS);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!values.out) throw new UsageError('--out is required');
    const profile = String(values.profile ?? 'site-a');
    if (!SITE_PROFILES[profile])
      throw new UsageError(`--profile: "${profile}" is not one of ${Object.keys(SITE_PROFILES).join(', ')}`);
    const anatomy = String(values.anatomy ?? 'mixed');
    if (!['head', 'pelvis', 'mixed'].includes(anatomy))
      throw new UsageError(`--anatomy: "${anatomy}" must be head, pelvis or mixed`);
    const subjects = numFlag(values, 'subjects', 1, 100_000, 20);
    const size = numFlag(values, 'size', 16, 1024, 128);
    const out = resolve(String(values.out));
    const bar = createProgress('phantoms', subjects);
    const ids = await writePhantomDataset({
      out,
      subjects,
      seed: numFlag(values, 'seed', 0, 2 ** 31 - 1, 1),
      profile,
      size,
      slices: values.slices === undefined ? undefined : numFlag(values, 'slices', 1, 4096),
      anatomy: anatomy === 'mixed' ? undefined : (anatomy as 'head' | 'pelvis'),
      onProgress: (d) => bar.tick(d),
    });
    bar.done();
    process.stdout.write(`${JSON.stringify({ out, profile, size, subjects: ids.length })}\n`);
    return 0;
  });
}
