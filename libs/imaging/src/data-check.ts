import { type ModalityNames, scanSubjects } from './dataset';
import { readNifti } from './nifti';
import { sameGeometry, type Volume } from './volume';

/** What the data check found about one subject. */
export interface SubjectReport {
  id: string;
  dims?: [number, number, number];
  spacing?: [number, number, number];
  sourceRange?: [number, number];
  targetRange?: [number, number];
  hasMask: boolean;
  problems: string[];
}

/** The whole data check: every subject, and whether anything is wrong. */
export interface DataCheckReport {
  dir: string;
  subjects: SubjectReport[];
  problemCount: number;
}

function range(v: Volume): { lo: number; hi: number; nan: number } {
  let lo = Infinity;
  let hi = -Infinity;
  let nan = 0;
  for (const x of v.data) {
    if (Number.isNaN(x)) nan++;
    else {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  return { lo, hi, nan };
}

/**
 * Checks a SynthRAD-layout dataset: every subject folder has both modalities, MR and CT (and mask)
 * share shape and geometry, no NaNs, and the CT looks like Hounsfield units.
 */
export async function checkDataset(
  dir: string,
  names: ModalityNames = {},
  onProgress?: (done: number, total: number) => void,
): Promise<DataCheckReport> {
  const { subjects, incomplete } = await scanSubjects(dir, names);
  const reports: SubjectReport[] = incomplete.map((s) => ({
    id: s.id,
    hasMask: false,
    problems: s.missing.map((m) => `missing ${m} image`),
  }));
  let done = 0;
  for (const s of subjects) {
    const r: SubjectReport = { id: s.id, hasMask: !!s.maskPath, problems: [] };
    reports.push(r);
    try {
      const [src, tgt, mask] = await Promise.all([
        readNifti(s.sourcePath),
        readNifti(s.targetPath),
        s.maskPath ? readNifti(s.maskPath) : undefined,
      ]);
      r.dims = src.dims;
      r.spacing = src.spacing.map((v) => Number(v.toFixed(4))) as [number, number, number];
      const rs = range(src);
      const rt = range(tgt);
      r.sourceRange = [rs.lo, rs.hi];
      r.targetRange = [rt.lo, rt.hi];
      if (tgt.dims.some((d, i) => d !== src.dims[i]))
        r.problems.push(`source is ${src.dims.join('x')} but target is ${tgt.dims.join('x')}`);
      else if (!sameGeometry(src, tgt, 1e-2))
        r.problems.push('source and target have different geometry (affines differ)');
      if (mask?.dims.some((d, i) => d !== src.dims[i]))
        r.problems.push(`mask is ${mask.dims.join('x')} but source is ${src.dims.join('x')}`);
      if (rs.nan) r.problems.push(`source has ${rs.nan} NaN voxels`);
      if (rt.nan) r.problems.push(`target has ${rt.nan} NaN voxels`);
      const isCt = (names.target ?? 'ct') === 'ct';
      if (isCt && !rt.nan) {
        if (rt.hi <= 1.5 && rt.lo >= -1.5)
          r.problems.push(`target values lie in [${rt.lo}, ${rt.hi}]: normalized, not Hounsfield units`);
        else if (rt.lo > -500) r.problems.push(`target minimum is ${rt.lo}: a CT in HU has air near -1000`);
        else if (rt.hi > 5000 || rt.lo < -2100)
          r.problems.push(
            `target range [${rt.lo}, ${rt.hi}] does not look like HU (missing rescale slope/intercept?)`,
          );
      }
    } catch (err) {
      r.problems.push((err as Error).message);
    }
    onProgress?.(++done, subjects.length);
  }
  reports.sort((a, b) => a.id.localeCompare(b.id));
  return { dir, subjects: reports, problemCount: reports.reduce((a, r) => a + r.problems.length, 0) };
}
