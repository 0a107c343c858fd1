import { describe, expect, it } from 'vitest';
import { computeBodyMask } from './body-mask';
import { generatePhantomPair, SITE_PROFILES, spinEcho, TISSUES, Tissue } from './phantom';

describe('paired phantoms', () => {
  it('is reproducible from its seed and differs between seeds', () => {
    const a = generatePhantomPair({ seed: 5, profile: 'site-a', size: 32, slices: 6 });
    const b = generatePhantomPair({ seed: 5, profile: 'site-a', size: 32, slices: 6 });
    const c = generatePhantomPair({ seed: 6, profile: 'site-a', size: 32, slices: 6 });
    expect(Buffer.from(a.mr.data.buffer).equals(Buffer.from(b.mr.data.buffer))).toBe(true);
    expect(Buffer.from(a.ct.data.buffer).equals(Buffer.from(c.ct.data.buffer))).toBe(false);
    expect(a.mr.dims).toEqual([32, 32, 6]);
  });

  it('gives each tissue its HU in the CT and the spin-echo contrast in the MRI', () => {
    const p = generatePhantomPair({ seed: 11, profile: 't1w', size: 96, slices: 8, anatomy: 'head' });
    const byTissue = new Map<number, { ct: number[]; mr: number[] }>();
    p.labels.forEach((t, i) => {
      if (!byTissue.has(t)) byTissue.set(t, { ct: [], mr: [] });
      byTissue.get(t)!.ct.push(p.ct.data[i]);
      byTissue.get(t)!.mr.push(p.mr.data[i]);
    });
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    for (const t of [Tissue.Air, Tissue.Fat, Tissue.CorticalBone, Tissue.WhiteMatter]) {
      expect(byTissue.has(t), `tissue ${Tissue[t]} present`).toBe(true);
    }
    expect(median(byTissue.get(Tissue.Air)!.ct)).toBeLessThan(-950);
    // Thin cortical bone is blurred by partial volume: well above marrow, below its pure 1300 HU.
    expect(median(byTissue.get(Tissue.CorticalBone)!.ct)).toBeGreaterThan(600);
    expect(
      Math.abs(median(byTissue.get(Tissue.WhiteMatter)!.ct) - TISSUES[Tissue.WhiteMatter].hu),
    ).toBeLessThan(25);
    // T1-weighted: fat bright, white matter brighter than grey matter, CSF and cortical bone dark.
    const mr = (t: Tissue) => median(byTissue.get(t)!.mr);
    expect(mr(Tissue.Fat)).toBeGreaterThan(mr(Tissue.WhiteMatter));
    expect(mr(Tissue.WhiteMatter)).toBeGreaterThan(mr(Tissue.Csf));
    expect(mr(Tissue.CorticalBone)).toBeLessThan(mr(Tissue.Csf));
    // The mask covers the body and nothing far outside it.
    for (let i = 0; i < p.labels.length; i++) if (p.labels[i] !== Tissue.Air) expect(p.mask.data[i]).toBe(1);
  });

  it('follows the signal equation and makes sites differ', () => {
    const wm = TISSUES[Tissue.WhiteMatter];
    expect(spinEcho(wm, 1.5, 500, 15)).toBeCloseTo(0.7 * (1 - Math.exp(-500 / 650)) * Math.exp(-15 / 75), 12);
    const a = generatePhantomPair({ seed: 1, profile: 'site-a', size: 32, slices: 4, anatomy: 'pelvis' });
    const b = generatePhantomPair({ seed: 1, profile: 'site-b', size: 32, slices: 4, anatomy: 'pelvis' });
    expect(a.ct.spacing[2]).toBe(SITE_PROFILES['site-a'].sliceThickness);
    expect(b.ct.spacing[2]).toBe(SITE_PROFILES['site-b'].sliceThickness);
    expect(Buffer.from(a.mr.data.buffer).equals(Buffer.from(b.mr.data.buffer))).toBe(false);
    expect(() => generatePhantomPair({ seed: 1, profile: 'nope', size: 32 })).toThrow(
      /unknown profile "nope"/,
    );
  });
});

describe('body mask from the MRI alone', () => {
  it('matches the phantom body (its ground truth) for every site profile and both anatomies', () => {
    for (const profile of Object.keys(SITE_PROFILES)) {
      for (const anatomy of ['head', 'pelvis'] as const) {
        const p = generatePhantomPair({ seed: 21, profile, size: 64, slices: 12, anatomy });
        const m = computeBodyMask(p.mr.data, p.mr.dims);
        let a = 0;
        let b = 0;
        let both = 0;
        for (let i = 0; i < m.length; i++) {
          const t = p.mask.data[i] > 0 ? 1 : 0;
          a += m[i];
          b += t;
          both += m[i] & t;
        }
        // Dice overlap: a mask that loses the scalp (and with it the MRI normalization) scores ~0.8.
        expect((2 * both) / (a + b), `${profile} ${anatomy}`).toBeGreaterThan(0.93);
      }
    }
  });
});
