import {
  checkDataset,
  checkTaskDataset,
  dataProblemLines,
  findModality,
  findSubjectDirs,
  formatTask,
  ImagingError,
  MODALITIES,
  type Modality,
  type ModalityMatch,
  type ModalityNames,
  type TaskSpec,
} from '@fedsynth/imaging';

/** What the data check says about the site's folder, ready to print. */
export interface SiteDataVerdict {
  ok: boolean;
  subjects: number;
  /** One line per problem, `<file relative to the folder>: <problem>`; empty when ok. */
  problems: string[];
  /** One line: the folder, and how many subjects and problems; or why there is nothing to train on. */
  summary: string;
  /** The command that prints the full report. */
  hint: string;
}

/** `fedsynth-data check DIR`, with the modality names when they are not the defaults. */
function checkCommand(dataDir: string, names: Required<ModalityNames>): string {
  const flags = (['source', 'target', 'mask'] as const)
    .filter((k) => names[k] !== { source: 'mr', target: 'ct', mask: 'mask' }[k])
    .map((k) => ` --${k} ${names[k]}`)
    .join('');
  return `fedsynth-data check ${dataDir}${flags}`;
}

/**
 * Runs libs/imaging's data check on the site's folder: the same checks as `fedsynth-data check`
 * (missing or unreadable files, zero dims, NaN or infinite voxels, bad spacing or affine, MR/CT/mask
 * mismatches, a CT not in HU). A folder without subjects is not ok either. Throws when the folder
 * cannot be read.
 */
export async function checkSiteData(
  dataDir: string,
  names: Required<ModalityNames>,
  match: ModalityMatch = {},
): Promise<SiteDataVerdict> {
  // A site for tasks beyond MRI -> CT: check every modality it has, as a task of all of them.
  const beyond = await modalitiesBeyondMriCt(dataDir, names, match);
  if (beyond) {
    const report = await checkTaskDataset(dataDir, beyond, match);
    return {
      ok: report.problemCount === 0,
      subjects: report.subjects.length,
      problems: dataProblemLines(report),
      summary: `${dataDir}: ${report.subjects.length} subjects with ${[...beyond.sources, beyond.target].join(', ')}, ${report.problemCount} problem(s)`,
      hint: `fedsynth-data check ${dataDir} --task ${formatTask(beyond)}`,
    };
  }
  const report = await checkDataset(dataDir, names);
  const hint = checkCommand(dataDir, names);
  if (report.subjects.length === 0)
    return {
      ok: false,
      subjects: 0,
      problems: [],
      summary: `${dataDir}: no subjects found (expected <subject>/${names.source}.nii.gz and ${names.target}.nii.gz)`,
      hint,
    };
  return {
    ok: report.problemCount === 0,
    subjects: report.subjects.length,
    problems: dataProblemLines(report),
    summary: `${dataDir}: ${report.subjects.length} subjects, ${report.problemCount} problem(s)`,
    hint,
  };
}

/**
 * The modalities of a site whose subjects are not SynthRAD MRI/CT pairs (no subject has both the
 * source and the target file), as a task of all of them (CT, else the last, as its target); null
 * for an MRI/CT site or a folder without any known modality.
 */
async function modalitiesBeyondMriCt(
  dataDir: string,
  names: Required<ModalityNames>,
  match: ModalityMatch,
): Promise<TaskSpec | null> {
  const m: ModalityMatch = { ...match, names: { mr: [names.source], ct: [names.target], ...match.names } };
  const present = new Set<Modality>();
  let pairs = 0;
  for (const d of (await findSubjectDirs(dataDir)).dirs) {
    const has = new Set<Modality>();
    const files = new Set<Modality>();
    for (const x of MODALITIES)
      try {
        const f = await findModality(d.path, x, m);
        if (f) has.add(x);
        if (f && f.format !== 'dicom') files.add(x);
      } catch {
        // Several series fit: a specific modality is there (the check names the ambiguity); the
        // generic `mr` fits every MR series of a site with several sequences, and is not.
        if (x !== 'mr') has.add(x);
      }
    // SynthRAD MRI/CT pairs (files): the classic check, which reads NIfTI and PNG.
    if (files.has('mr') && files.has('ct')) pairs++;
    for (const x of has) present.add(x);
  }
  if (pairs > 0 || present.size < 2) return null;
  const all = MODALITIES.filter((x) => present.has(x));
  const target = all.includes('ct') ? 'ct' : all[all.length - 1];
  return { sources: all.filter((x) => x !== target), target, context: 0 };
}

/** At most `max` lines, then a line saying how many more there are. */
export function firstLines(lines: string[], max: number): string[] {
  return lines.length > max ? [...lines.slice(0, max), `... and ${lines.length - max} more`] : lines;
}

/**
 * Refuses to start the daemon on data that would break training (or on no data): throws a
 * DATASET_PROBLEM error listing each problem on its own line, naming the file, and the command
 * that prints the full report. Returns the number of subjects when the data is fine.
 */
export async function requireTrainableData(
  dataDir: string,
  names: Required<ModalityNames>,
  match: ModalityMatch = {},
): Promise<number> {
  let verdict: SiteDataVerdict;
  try {
    verdict = await checkSiteData(dataDir, names, match);
  } catch (err) {
    throw new ImagingError('DATASET_PROBLEM', `refusing to start: ${(err as Error).message}`, dataDir);
  }
  if (verdict.ok) return verdict.subjects;
  const listed = firstLines(verdict.problems, 50).map((l) => `  ${l}\n`);
  throw new ImagingError(
    'DATASET_PROBLEM',
    `refusing to start: the data check failed for ${verdict.summary}${listed.length ? ':' : ''}\n${listed.join('')}` +
      `fix the data (run '${verdict.hint}' for the full report) and start again`,
    dataDir,
  );
}
