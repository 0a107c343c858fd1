import type { Dirent } from 'node:fs';
import { readdir, readlink, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { type DicomSeries, listDicomSeries, readDicomSeries } from './dicom';
import { ImagingError } from './errors';
import { readImage } from './image-read';
import type { Modality } from './task';
import type { Volume } from './volume';

/** A subject folder of a dataset folder. */
export interface SubjectDir {
  id: string;
  path: string;
}

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);

async function linkTarget(path: string): Promise<string> {
  try {
    return await readlink(path);
  } catch {
    return '?';
  }
}

/**
 * The subject folders of a dataset folder, sorted by name (code-unit order, the same on every
 * machine). Symbolic links to folders count as subject folders; a broken link (or a link loop) is
 * reported in `problems`, naming the link and its target. Entries starting with '.' are skipped.
 */
export async function findSubjectDirs(
  dir: string,
): Promise<{ dirs: SubjectDir[]; problems: { id: string; problem: string }[] }> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new ImagingError('FILE_NOT_FOUND', `${dir}: cannot read the data folder (${errCode(err)})`, dir);
  }
  const dirs: SubjectDir[] = [];
  const problems: { id: string; problem: string }[] = [];
  const names = entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of names) {
    const path = join(dir, e.name);
    if (e.isDirectory()) dirs.push({ id: e.name, path });
    else if (e.isSymbolicLink()) {
      try {
        if ((await stat(path)).isDirectory()) dirs.push({ id: e.name, path });
      } catch (err) {
        const code = errCode(err);
        problems.push({
          id: e.name,
          problem: `${path} is a symbolic link to ${await linkTarget(path)}, which ${code === 'ENOENT' ? 'does not exist' : code === 'ELOOP' ? 'is a loop of links' : `cannot be read (${code})`}`,
        });
      }
    }
  }
  return { dirs, problems };
}

/** File names (without extension) of each modality in a subject folder; matched case-insensitively. */
export const DEFAULT_MODALITY_NAMES: Readonly<Record<Modality, readonly string[]>> = {
  mr: ['mr'],
  t1: ['t1', 't1w'],
  t2: ['t2', 't2w'],
  flair: ['flair'],
  pet: ['pet'],
  ct: ['ct'],
};

/** DICOM Modality (0008,0060) of each modality's series. */
const DICOM_MODALITY: Record<Modality, string> = {
  mr: 'MR',
  t1: 'MR',
  t2: 'MR',
  flair: 'MR',
  pet: 'PT',
  ct: 'CT',
};

/** The default SeriesDescription rules ('_' and digits count as separators before t1/t2). */
const DEFAULT_SERIES: Record<Modality, (description: string) => boolean> = {
  mr: () => true,
  t1: (d) => /(?:^|[^a-z0-9])t1/i.test(d) && !/flair/i.test(d),
  t2: (d) => /(?:^|[^a-z0-9])t2/i.test(d) && !/flair/i.test(d),
  flair: (d) => /flair/i.test(d),
  pet: () => true,
  ct: () => true,
};

/** How a subject's images are recognized (each entry replaces the default for its modality). */
export interface ModalityMatch {
  /**
   * File names without extension (`<name>.nii.gz`, `.nii` or `.png`), matched case-insensitively.
   * Defaults: see DEFAULT_MODALITY_NAMES.
   */
  names?: Partial<Record<Modality, readonly string[]>>;
  /**
   * A pattern on a DICOM series' SeriesDescription (0008,103E); a string is read as a
   * case-insensitive regular expression. The series must also be of the modality's DICOM
   * Modality (MR, PT, CT) when the file says one. Defaults: t1 and t2 by "t1"/"t2" at the start of
   * a word and no "flair"; flair by "flair"; mr, pet and ct: any series of Modality MR, PT, CT.
   */
  series?: Partial<Record<Modality, RegExp | string>>;
}

/** Where a subject's image of one modality is. */
export interface FoundModality {
  format: 'nifti' | 'png' | 'dicom';
  /** The file; for DICOM, the folder holding the series' files. */
  path: string;
  /** Which modality was looked for (a CT in PNG is read as HU). */
  modality?: Modality;
  /** DICOM: the series. */
  seriesInstanceUid?: string;
  /** DICOM: its SeriesDescription. */
  description?: string;
}

const EXTENSIONS = [
  { ext: '.nii.gz', format: 'nifti' },
  { ext: '.nii', format: 'nifti' },
  { ext: '.png', format: 'png' },
] as const;

/** How deep below the subject folder DICOM series are looked for. */
const DICOM_DEPTH = 2;

async function findFile(subjectDir: string, modality: Modality, names: readonly string[]) {
  let entries: Dirent[];
  try {
    entries = await readdir(subjectDir, { withFileTypes: true });
  } catch (err) {
    throw new ImagingError(
      'FILE_NOT_FOUND',
      `${subjectDir}: cannot read the subject folder (${errCode(err)})`,
      subjectDir,
    );
  }
  const wanted = names.map((n) => n.toLowerCase());
  const hits: { file: string; base: string; rank: number; format: 'nifti' | 'png' }[] = [];
  for (const e of entries) {
    const lower = e.name.toLowerCase();
    const rank = EXTENSIONS.findIndex((x) => lower.endsWith(x.ext));
    if (rank < 0) continue;
    const base = lower.slice(0, lower.length - EXTENSIONS[rank].ext.length);
    if (!wanted.includes(base)) continue;
    const path = join(subjectDir, e.name);
    if (e.isSymbolicLink()) {
      let isFile = false;
      try {
        isFile = (await stat(path)).isFile();
      } catch (err) {
        throw new ImagingError(
          'FILE_NOT_FOUND',
          `${path} (the ${modality} image) is a symbolic link to ${await linkTarget(path)}, which cannot be read (${errCode(err)})`,
          path,
        );
      }
      if (!isFile) continue;
    } else if (!e.isFile()) continue;
    hits.push({ file: path, base, rank, format: EXTENSIONS[rank].format });
  }
  if (hits.length === 0) return undefined;
  const bases = [...new Set(hits.map((h) => h.base))];
  if (bases.length > 1)
    throw new ImagingError(
      'DATASET_PROBLEM',
      `${subjectDir}: several ${modality} images (${hits.map((h) => h.file).join(', ')}); keep one, or name the one to use in the ${modality} file names`,
      subjectDir,
    );
  hits.sort((a, b) => a.rank - b.rank);
  if (hits.length > 1 && hits[0].rank === hits[1].rank)
    throw new ImagingError(
      'DATASET_PROBLEM',
      `${subjectDir}: ${hits[0].file} and ${hits[1].file} differ only in case; keep one`,
      subjectDir,
    );
  return { format: hits[0].format, path: hits[0].file };
}

/** The deepest folder holding all of a series' files. */
function seriesFolder(s: DicomSeries): string {
  let dir = dirname(s.files[0]);
  for (const f of s.files) while (dir !== dirname(dir) && !f.startsWith(dir + sep)) dir = dirname(dir);
  return dir;
}

function seriesRule(modality: Modality, opts: ModalityMatch): (description: string) => boolean {
  const p = opts.series?.[modality];
  if (p === undefined) return DEFAULT_SERIES[modality];
  const re = typeof p === 'string' ? new RegExp(p, 'i') : p;
  return (d) => {
    re.lastIndex = 0;
    return re.test(d);
  };
}

/**
 * Where a subject's image of one modality is: a file `<name>.nii.gz`, `<name>.nii` or
 * `<name>.png` in the subject folder for any of the modality's names (case-insensitive; symbolic
 * links followed; .nii.gz before .nii before .png), else a DICOM series in the folder or its
 * subfolders (two levels down) that fits the modality (see ModalityMatch.series). Undefined when
 * there is none; an error naming the candidates when several series fit.
 */
export async function findModality(
  subjectDir: string,
  modality: Modality,
  opts: ModalityMatch = {},
): Promise<FoundModality | undefined> {
  const names = opts.names?.[modality] ?? DEFAULT_MODALITY_NAMES[modality];
  const file = await findFile(subjectDir, modality, names);
  if (file) return { ...file, modality };
  const want = DICOM_MODALITY[modality];
  const custom = opts.series?.[modality] !== undefined;
  const rule = seriesRule(modality, opts);
  const fits = (await listDicomSeries(subjectDir, { maxDepth: DICOM_DEPTH })).filter(
    (s) =>
      (s.modality === want || (s.modality === '' && (custom || !['mr', 'pet', 'ct'].includes(modality)))) &&
      rule(s.description),
  );
  if (fits.length === 0) return undefined;
  if (fits.length > 1) {
    const where = (s: DicomSeries) => relative(subjectDir, seriesFolder(s)) || '.';
    const list = fits
      .map((s) => `"${s.description}" in ${where(s)} (${s.files.length} files, ${s.seriesInstanceUid})`)
      .join('; ');
    const sameText = new Set(fits.map((s) => s.description)).size < fits.length;
    const example = `^${fits[0].description.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
    throw new ImagingError(
      'DATASET_PROBLEM',
      `${subjectDir}: ${fits.length} DICOM series fit ${modality}: ${list}; ${
        sameText
          ? 'some share a description, so keep only one of those in the subject folder, or choose'
          : 'choose'
      } one with a pattern on the SeriesDescription in the options' series.${modality}${sameText ? '' : ` (e.g. ${JSON.stringify(example)})`}`,
      subjectDir,
    );
  }
  const s = fits[0];
  return {
    format: 'dicom',
    path: seriesFolder(s),
    modality,
    seriesInstanceUid: s.seriesInstanceUid,
    description: s.description,
  };
}

/**
 * Reads what findModality found: NIfTI, PNG (a CT in PNG converted to HU) or the DICOM series
 * (rescaled: HU for CT, Bq/mL for PET with Units BQML).
 */
export async function readModality(found: FoundModality): Promise<Volume> {
  if (found.format === 'dicom') return readDicomSeries(found.path, found.seriesInstanceUid);
  return readImage(found.path, found.modality === 'ct');
}
