import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ImagingError } from './errors';
import { readNifti } from './nifti';
import {
  type FoundModality,
  findModality,
  findSubjectDirs,
  type ModalityMatch,
  readModality,
} from './subject-files';
import { petDoseFromDicom, petDoseFromSidecar, suvFactor } from './suv';
import { type Modality, type TaskSpec, taskModalities } from './task';
import type { TaskSubject } from './task-data';
import type { Volume } from './volume';

/** Where one subject's images for a task are, and which the task needs but the subject lacks. */
export interface TaskSubjectFiles {
  id: string;
  dir: string;
  files: Partial<Record<Modality, FoundModality>>;
  /** `mask.nii.gz` (or .nii) in the subject folder, when present. */
  maskPath?: string;
  missing: Modality[];
  /** A problem finding the files (ambiguous DICOM series), named. */
  problem?: string;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * The subjects of a site's data folder for a task: each subject folder (symbolic links followed)
 * with, per modality the task needs, a NIfTI/PNG file or a DICOM series (see findModality), and
 * what is missing. Broken links are returned in `problems`.
 */
export async function scanTaskSubjects(
  dir: string,
  task: TaskSpec,
  match: ModalityMatch = {},
): Promise<{ subjects: TaskSubjectFiles[]; problems: { id: string; problem: string }[] }> {
  const { dirs, problems } = await findSubjectDirs(dir);
  const subjects: TaskSubjectFiles[] = [];
  for (const d of dirs) {
    const files: TaskSubjectFiles['files'] = {};
    const missing: Modality[] = [];
    let problem: string | undefined;
    for (const m of taskModalities(task)) {
      try {
        const f = await findModality(d.path, m, match);
        if (f) files[m] = f;
        else missing.push(m);
      } catch (err) {
        problem = (err as Error).message;
        missing.push(m);
      }
    }
    let maskPath: string | undefined;
    for (const name of ['mask.nii.gz', 'mask.nii'])
      if (!maskPath && (await isFile(join(d.path, name)))) maskPath = join(d.path, name);
    subjects.push({
      id: d.id,
      dir: d.path,
      files,
      missing,
      ...(maskPath ? { maskPath } : {}),
      ...(problem ? { problem } : {}),
    });
  }
  return { subjects, problems };
}

/**
 * The SUV factor of a subject's PET: from the DICOM series' header, or from a JSON sidecar next to
 * the NIfTI (`pet.json`, or `<file>.json`). Errors name what is missing and where it was looked for.
 */
export async function petSuvFactor(found: FoundModality): Promise<number> {
  if (found.format === 'dicom') return suvFactor(await petDoseFromDicom(found.path, found.seriesInstanceUid));
  const base = found.path.replace(/\.(nii\.gz|nii|png)$/i, '');
  const candidates = [`${base}.json`, join(dirname(found.path), 'pet.json')];
  for (const c of candidates) if (await isFile(c)) return suvFactor(await petDoseFromSidecar(c));
  throw new ImagingError(
    'DATASET_PROBLEM',
    `${found.path}: PET needs the patient's weight and the injected dose to be scaled to SUV; put them in ${candidates[0]} ({"BodyWeight": kg, "InjectedRadioactivity": MBq, "InjectedRadioactivityUnits": "MBq"})`,
    found.path,
  );
}

/** Reads a subject's images for a task (every modality found, the mask file, the PET dose). */
export async function readTaskSubject(s: TaskSubjectFiles, task: TaskSpec): Promise<TaskSubject> {
  if (s.missing.length > 0)
    throw new ImagingError(
      'DATASET_PROBLEM',
      s.problem ??
        `subject ${s.id} (${s.dir}) has no ${s.missing.join(', ')} (the task needs ${taskModalities(task).join(', ')})`,
      s.dir,
    );
  const volumes: Partial<Record<Modality, Volume>> = {};
  const origins: Partial<Record<Modality, string>> = {};
  let suv: number | undefined;
  for (const [m, f] of Object.entries(s.files) as [Modality, FoundModality][]) {
    volumes[m] = await readModality(f);
    origins[m] = f.format === 'dicom' ? `${f.path} (DICOM series "${f.description ?? ''}")` : f.path;
    if (m === 'pet') suv = await petSuvFactor(f);
  }
  return {
    id: s.id,
    volumes,
    origins,
    ...(s.maskPath ? { mask: await readNifti(s.maskPath) } : {}),
    ...(suv !== undefined ? { suvFactor: suv } : {}),
  };
}
