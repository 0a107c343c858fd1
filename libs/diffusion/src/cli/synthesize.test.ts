import { generatePhantomPair, normalizeMr, parseTask, standardizeMr } from '@fedsynth/imaging';
import { describe, expect, it } from 'vitest';
import { isMriToCt, normalizeTaskSources } from './synthesize';

describe("synthesis scales MR as the model's task says", () => {
  it('reads a landmark-standardized mr-to-ct model the task way, its input standardized', () => {
    const landmarks = parseTask('mr-to-ct:mr=landmarks');
    // synthesizeVolume (the original path) normalizes by percentiles: only plain mr-to-ct takes it.
    expect(isMriToCt(parseTask('mr-to-ct'))).toBe(true);
    expect(isMriToCt(landmarks)).toBe(false);
    const p = generatePhantomPair({ seed: 3, profile: 'site-b', size: 16, slices: 4 });
    const subject = { id: 'in', volumes: { mr: p.mr }, origins: { mr: 'mr.nii.gz' }, mask: p.mask };
    const n = normalizeTaskSources(subject, landmarks);
    expect(n.sources[0]).toEqual(standardizeMr(p.mr.data, p.mask.data).data);
    expect(n.sources[0]).not.toEqual(normalizeMr(p.mr.data, p.mask.data).data);
    expect(normalizeTaskSources(subject, parseTask('mr-to-ct')).sources[0]).toEqual(
      normalizeMr(p.mr.data, p.mask.data).data,
    );
  });
});
