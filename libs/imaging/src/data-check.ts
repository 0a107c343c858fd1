import { relative, sep } from 'node:path';
import { type ModalityNames, readImage, scanSubjects } from './dataset';
import { type NiftiHeaderInfo, readNiftiWithHeader } from './nifti';
import {
  DEFAULT_MODALITY_NAMES,
  type FoundModality,
  type ModalityMatch,
  readModality,
} from './subject-files';
import { formatTask, type Modality, type TaskSpec } from './task';
import { petSuvFactor, scanTaskSubjects } from './task-subjects';
import { describeNonFinite, nonFiniteCount, type ValueStats, valueStats } from './value-stats';
import type { Volume } from './volume';

/** Kinds of problems the data check reports. */
export type DataIssueKind =
  | 'missing-file'
  | 'unreadable'
  | 'non-finite'
  | 'bad-spacing'
  | 'bad-affine'
  | 'shape-mismatch'
  | 'geometry-mismatch'
  | 'not-hounsfield'
  | 'missing-dose';

/** One problem with one file of a dataset. */
export interface DataIssue {
  kind: DataIssueKind;
  /** The file, relative to the dataset folder with '/' separators (`subj-3/ct.nii.gz`). */
  file: string;
  /** What is wrong, without the file name. */
  message: string;
  /** The file it was compared with, for shape and geometry mismatches. */
  otherFile?: string;
  /** Counts of non-finite voxels, for `non-finite`. */
  nonFinite?: { nan: number; posInf: number; negInf: number };
}

/** What the data check found about one subject. */
export interface SubjectReport {
  id: string;
  dims?: [number, number, number];
  spacing?: [number, number, number];
  sourceRange?: [number, number];
  targetRange?: [number, number];
  hasMask: boolean;
  /** Each problem as one line, `<file>: <problem>` (the `issues` as text). */
  problems: string[];
  /** The same problems, structured. */
  issues: DataIssue[];
}

/** The whole data check: every subject, and whether anything is wrong. */
export interface DataCheckReport {
  dir: string;
  subjects: SubjectReport[];
  problemCount: number;
}

/** One image as the check reads it: NIfTI with its header facts, PNG without. */
interface Checked {
  file: string;
  volume: Volume;
  header?: NiftiHeaderInfo;
  stats: ValueStats;
}

const shape = (v: Volume) => v.dims.join('x');

/** Problems with a volume's voxel-to-world geometry: affine, and the spacing it implies. */
function geometryIssues(c: Checked): DataIssue[] {
  const out: DataIssue[] = [];
  const a = c.volume.affine;
  if (!Array.from(a).every(Number.isFinite)) {
    const bad = Array.from(a.subarray(0, 12)).filter((x) => !Number.isFinite(x));
    return [
      {
        kind: 'bad-affine',
        file: c.file,
        message: `affine has ${bad.length} non-finite entr${bad.length === 1 ? 'y' : 'ies'} (${[...new Set(bad)].join(', ')})`,
      },
    ];
  }
  const s = c.volume.spacing;
  const zero = s.map((v, k) => (v > 0 ? -1 : k)).filter((k) => k >= 0);
  if (zero.length) {
    out.push({
      kind: 'bad-spacing',
      file: c.file,
      message: `voxel spacing is ${s.map((v) => Number(v.toPrecision(4))).join(' x ')} mm: affine column ${zero.join(', ')} is zero, so the affine is not invertible`,
    });
  } else {
    // |det| reaches the product of the column lengths for orthogonal axes and 0 for degenerate ones.
    const det =
      a[0] * (a[5] * a[10] - a[6] * a[9]) -
      a[1] * (a[4] * a[10] - a[6] * a[8]) +
      a[2] * (a[4] * a[9] - a[5] * a[8]);
    if (Math.abs(det) <= 1e-6 * s[0] * s[1] * s[2])
      out.push({
        kind: 'bad-affine',
        file: c.file,
        message: `affine is not invertible (its voxel axes are linearly dependent, determinant ${det.toPrecision(3)})`,
      });
  }
  // Without an sform the affine is built from pixdim, and the reader puts 1 mm in place of a bad size.
  if (c.header && c.header.affineFrom !== 'sform') {
    for (let k = 1; k <= Math.min(3, c.header.ndim); k++) {
      const v = c.header.pixdim[k - 1];
      if (!(Number.isFinite(v) && v > 0))
        out.push({
          kind: 'bad-spacing',
          file: c.file,
          message: `voxel spacing pixdim[${k}] is ${v}; it must be positive and finite (read as 1 mm)`,
        });
    }
  }
  return out;
}

/** Shape, then affine, of `other` against the source. */
function mismatchIssue(src: Checked, other: Checked): DataIssue | undefined {
  const [a, b] = [src.volume, other.volume];
  if (b.dims.some((d, i) => d !== a.dims[i]))
    return {
      kind: 'shape-mismatch',
      file: other.file,
      otherFile: src.file,
      message: `shape ${shape(b)} differs from ${src.file} (${shape(a)})`,
    };
  let worst = 0;
  for (let i = 0; i < 12; i++) worst = Math.max(worst, Math.abs(a.affine[i] - b.affine[i]));
  // Float32 header storage alone moves an affine by far less than 0.01 mm.
  if (worst > 1e-2)
    return {
      kind: 'geometry-mismatch',
      file: other.file,
      otherFile: src.file,
      message: `affine differs from ${src.file} (same shape, different voxel-to-world geometry; largest entry difference ${Number(worst.toPrecision(3))})`,
    };
  return undefined;
}

/** Why a CT's value range does not look like Hounsfield units, if it does not. */
function huProblem(s: ValueStats, what = 'target'): string | undefined {
  if (s.max <= 1.5 && s.min >= -1.5)
    return `${what} values lie in [${s.min}, ${s.max}]: normalized, not Hounsfield units`;
  if (s.min > -500) return `${what} minimum is ${s.min}: a CT in HU has air near -1000`;
  if (s.max > 5000 || s.min < -2100)
    return `${what} range [${s.min}, ${s.max}] does not look like HU (missing rescale slope/intercept?)`;
  return undefined;
}

/**
 * Checks a SynthRAD-layout dataset, naming the file (relative to `dir`) in every problem: every
 * subject folder has both modalities; each file reads, has positive dims, finite voxels (no NaN or
 * ±Infinity), positive finite spacing and a finite invertible affine; the target and mask share the
 * source's shape and affine; and the CT looks like Hounsfield units.
 */
export async function checkDataset(
  dir: string,
  names: ModalityNames = {},
  onProgress?: (done: number, total: number) => void,
): Promise<DataCheckReport> {
  const { subjects, incomplete } = await scanSubjects(dir, names);
  const rel = (p: string) => relative(dir, p).split(sep).join('/');
  const reports: SubjectReport[] = [];
  const reportOf = (id: string, hasMask: boolean) => {
    const r: SubjectReport = { id, hasMask, problems: [], issues: [] };
    reports.push(r);
    const add = (issue: DataIssue | undefined) => {
      if (!issue) return;
      r.issues.push(issue);
      r.problems.push(`${issue.file}: ${issue.message}`);
    };
    return { r, add };
  };
  for (const s of incomplete) {
    const { add } = reportOf(s.id, false);
    for (const m of s.missing)
      add({
        kind: 'missing-file',
        file: `${s.id}/${m}.nii.gz`,
        message: `missing ${m} image (looked for ${m}.nii.gz, ${m}.nii and ${m}.png)`,
      });
  }
  const isCt = (names.target ?? 'ct') === 'ct';
  let done = 0;
  for (const s of subjects) {
    const { r, add } = reportOf(s.id, !!s.maskPath);
    const read = async (path: string, ct: boolean): Promise<Checked> => {
      const file = rel(path);
      if (path.endsWith('.png')) {
        const volume = await readImage(path, ct);
        return { file, volume, stats: valueStats(volume.data) };
      }
      const { volume, header } = await readNiftiWithHeader(path);
      return { file, volume, header, stats: valueStats(volume.data) };
    };
    const files = [s.sourcePath, s.targetPath, s.maskPath];
    const settled = await Promise.allSettled(
      files.map((p, k) => (p ? read(p, k === 1) : Promise.resolve(undefined))),
    );
    const [src, tgt, mask] = settled.map((res, k) => {
      if (res.status === 'fulfilled') return res.value;
      const path = files[k]!;
      const msg = (res.reason as Error).message ?? String(res.reason);
      add({
        kind: 'unreadable',
        file: rel(path),
        message: msg.startsWith(`${path}: `) ? msg.slice(path.length + 2) : msg,
      });
      return undefined;
    });
    if (src) {
      r.dims = src.volume.dims;
      r.spacing = src.volume.spacing.map((v) => Number(v.toFixed(4))) as [number, number, number];
      r.sourceRange = [src.stats.min, src.stats.max];
    }
    if (tgt) r.targetRange = [tgt.stats.min, tgt.stats.max];
    for (const c of [src, tgt, mask]) {
      if (!c) continue;
      if (nonFiniteCount(c.stats) > 0)
        add({
          kind: 'non-finite',
          file: c.file,
          message: describeNonFinite(c.stats),
          nonFinite: { nan: c.stats.nan, posInf: c.stats.posInf, negInf: c.stats.negInf },
        });
      for (const issue of geometryIssues(c)) add(issue);
    }
    if (src) for (const other of [tgt, mask]) if (other) add(mismatchIssue(src, other));
    if (isCt && tgt && nonFiniteCount(tgt.stats) === 0) {
      const message = huProblem(tgt.stats);
      if (message) add({ kind: 'not-hounsfield', file: tgt.file, message });
    }
    onProgress?.(++done, subjects.length);
  }
  reports.sort((a, b) => a.id.localeCompare(b.id));
  return { dir, subjects: reports, problemCount: reports.reduce((a, r) => a + r.problems.length, 0) };
}

/** Every problem of a report as one line, `<file>: <problem>`, subject by subject. */
export function dataProblemLines(report: DataCheckReport): string[] {
  return report.subjects.flatMap((s) => s.problems);
}

/**
 * Checks a site's data folder for a task, naming the file (or DICOM series folder) in every
 * problem: each subject has every modality the task needs (files by name or DICOM series by
 * description; symbolic links followed), each reads with finite voxels and a sound geometry, all
 * of a subject's volumes (and its mask) share one grid, a CT is in Hounsfield units, and a PET
 * has the patient's weight and injected dose for SUV.
 */
export async function checkTaskDataset(
  dir: string,
  task: TaskSpec,
  match: ModalityMatch = {},
  onProgress?: (done: number, total: number) => void,
): Promise<DataCheckReport> {
  const { subjects, problems } = await scanTaskSubjects(dir, task, match);
  const rel = (p: string) => relative(dir, p).split(sep).join('/') || '.';
  const reports: SubjectReport[] = [];
  for (const p of problems)
    reports.push({
      id: p.id,
      hasMask: false,
      problems: [`${p.id}: ${p.problem}`],
      issues: [{ kind: 'unreadable', file: p.id, message: p.problem }],
    });
  let done = 0;
  for (const s of subjects) {
    const r: SubjectReport = { id: s.id, hasMask: !!s.maskPath, problems: [], issues: [] };
    reports.push(r);
    const add = (issue: DataIssue | undefined) => {
      if (!issue) return;
      r.issues.push(issue);
      r.problems.push(`${issue.file}: ${issue.message}`);
    };
    for (const m of s.missing) {
      const names = match.names?.[m] ?? DEFAULT_MODALITY_NAMES[m];
      add({
        kind: 'missing-file',
        file: `${s.id}/${m}`,
        message:
          s.problem ??
          `no ${m} for the task ${formatTask(task)} (looked for ${names.map((n) => `${n}.nii.gz`).join(', ')} (.nii, .png) and a DICOM series of ${m})`,
      });
    }
    const checked: { m: Modality | 'mask'; c: Checked; found?: FoundModality }[] = [];
    const entries: [Modality | 'mask', FoundModality][] = [
      ...(Object.entries(s.files) as [Modality, FoundModality][]),
      ...(s.maskPath
        ? [['mask', { format: 'nifti', path: s.maskPath }] as [Modality | 'mask', FoundModality]]
        : []),
    ];
    for (const [m, f] of entries) {
      const file =
        f.format === 'dicom' ? `${rel(f.path)} (DICOM series "${f.description ?? ''}")` : rel(f.path);
      try {
        if (f.format === 'nifti') {
          const { volume, header } = await readNiftiWithHeader(f.path);
          checked.push({ m, c: { file, volume, header, stats: valueStats(volume.data) }, found: f });
        } else {
          const volume = await readModality(f);
          checked.push({ m, c: { file, volume, stats: valueStats(volume.data) }, found: f });
        }
      } catch (err) {
        const msg = (err as Error).message ?? String(err);
        add({
          kind: 'unreadable',
          file,
          message: msg.startsWith(`${f.path}: `) ? msg.slice(f.path.length + 2) : msg,
        });
      }
    }
    const first = checked.find((x) => x.m !== 'mask');
    if (first) {
      r.dims = first.c.volume.dims;
      r.spacing = first.c.volume.spacing.map((v) => Number(v.toFixed(4))) as [number, number, number];
    }
    const src = checked.find((x) => x.m === task.sources[0]);
    const tgt = checked.find((x) => x.m === task.target);
    if (src) r.sourceRange = [src.c.stats.min, src.c.stats.max];
    if (tgt) r.targetRange = [tgt.c.stats.min, tgt.c.stats.max];
    for (const { m, c, found } of checked) {
      if (nonFiniteCount(c.stats) > 0)
        add({
          kind: 'non-finite',
          file: c.file,
          message: describeNonFinite(c.stats),
          nonFinite: { nan: c.stats.nan, posInf: c.stats.posInf, negInf: c.stats.negInf },
        });
      for (const issue of geometryIssues(c)) add(issue);
      if (first && c !== first.c) add(mismatchIssue(first.c, c));
      if (m === 'ct' && nonFiniteCount(c.stats) === 0) {
        const message = huProblem(c.stats, 'CT');
        if (message) add({ kind: 'not-hounsfield', file: c.file, message });
      }
      if (m === 'pet' && found)
        try {
          await petSuvFactor(found);
        } catch (err) {
          add({ kind: 'missing-dose', file: c.file, message: (err as Error).message });
        }
    }
    onProgress?.(++done, subjects.length);
  }
  reports.sort((a, b) => a.id.localeCompare(b.id));
  return { dir, subjects: reports, problemCount: reports.reduce((a, r) => a + r.problems.length, 0) };
}
