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
import { PHANTOM_DICOM_SERIES, SITE_PROFILES, writePhantomDataset } from '../phantom';
import { MODALITIES, type Modality } from '../task';

const FLAGS: Record<string, FlagSpec> = {
  subjects: { type: 'string', valueName: 'n', description: 'number of subjects to write', default: '20' },
  out: {
    type: 'string',
    valueName: 'dir',
    description:
      'output folder (SynthRAD2023 layout: <id>/<modality>.nii.gz and mask.nii.gz; with --format dicom, <id>/<modality>/ DICOM series)',
  },
  modalities: {
    type: 'string',
    valueName: 'list',
    description: `modalities to image, comma separated: ${MODALITIES.join(', ')} (PET's dose goes in pet.json, or in the DICOM header)`,
    default: 'mr,ct',
  },
  format: {
    type: 'string',
    valueName: 'nifti|dicom',
    description:
      'nifti, or dicom: each modality as a DICOM series in <id>/<modality>/ (PET with its dose in the header; the mask stays mask.nii.gz)',
    default: 'nifti',
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
  'Writes phantom subjects (random head and pelvis anatomies) imaged with the chosen modalities:\n' +
    "the profile's spin-echo MRI (mr), T1w and T2w spin echo, FLAIR, FDG PET (Bq/mL) and CT (HU),\n" +
    'in the SynthRAD2023 layout (NIfTI) or as DICOM series, for demos and tests when no patient data\n' +
    'may be used.',
  FLAGS,
);

/** The --modalities list, checked: known modalities, each once. */
function modalitiesOf(text: string): Modality[] {
  const known = MODALITIES.join(', ');
  const list = text
    .split(',')
    .map((m) => m.trim().toLowerCase())
    .filter((m) => m !== '');
  if (list.length === 0) throw new UsageError(`--modalities: list one or more of ${known}`);
  const seen = new Set<string>();
  for (const m of list) {
    if (!(MODALITIES as readonly string[]).includes(m))
      throw new UsageError(`--modalities: "${m}" is not a modality; known: ${known}`);
    if (seen.has(m)) throw new UsageError(`--modalities: ${m} is listed twice`);
    seen.add(m);
  }
  return list as Modality[];
}

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
    const modalities = modalitiesOf(String(values.modalities ?? 'mr,ct'));
    const format = String(values.format ?? 'nifti').toLowerCase();
    if (format !== 'nifti' && format !== 'dicom')
      throw new UsageError(`--format: "${values.format}" must be nifti or dicom`);
    const subjects = numFlag(values, 'subjects', 1, 100_000, 20);
    const size = numFlag(values, 'size', 16, 1024, 128);
    const out = resolve(String(values.out));
    const mrs = modalities.filter((m) => PHANTOM_DICOM_SERIES[m].modality === 'MR');
    if (format === 'dicom' && modalities.includes('mr') && mrs.length > 1)
      process.stderr.write(
        `note: with --format dicom, mr is found as any MR series, so next to ${mrs.filter((m) => m !== 'mr').join(', ')} it is ambiguous; to read it as mr, match its SeriesDescription "MR SE"\n`,
      );
    const bar = createProgress('phantoms', subjects);
    const common = {
      out,
      subjects,
      seed: numFlag(values, 'seed', 0, 2 ** 31 - 1, 1),
      profile,
      size,
      slices: values.slices === undefined ? undefined : numFlag(values, 'slices', 1, 4096),
      anatomy: anatomy === 'mixed' ? undefined : (anatomy as 'head' | 'pelvis'),
      modalities,
      format: format as 'nifti' | 'dicom',
      onProgress: (d: number) => bar.tick(d),
    };
    const ids = await writePhantomDataset(common);
    bar.done();
    process.stdout.write(
      `${JSON.stringify({ out, profile, size, subjects: ids.length, modalities, format })}\n`,
    );
    return 0;
  });
}
