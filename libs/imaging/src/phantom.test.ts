import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { computeBodyMask } from './body-mask';
import { readNifti } from './nifti';
import {
  generatePhantomPair,
  generatePhantomSubject,
  inversionRecovery,
  mrSequence,
  type PhantomSubject,
  SITE_PROFILES,
  spinEcho,
  TISSUES,
  Tissue,
  writePhantomDataset,
} from './phantom';
import { subSeed } from './rng';
import { sameGeometry } from './volume';

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

const sha256 = (a: ArrayBufferView) =>
  createHash('sha256')
    .update(Buffer.from(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');
const same = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Mean of `data * scale` over the voxels of each tissue label (NaN where a label is absent). */
function meansByLabel(data: Float32Array, labels: Uint8Array, scale = 1): number[] {
  const sum = new Array(9).fill(0);
  const count = new Array(9).fill(0);
  labels.forEach((t, i) => {
    sum[t] += data[i] * scale;
    count[t]++;
  });
  return sum.map((s, t) => s / count[t]);
}

/** Voxels of `tissue` whose 6 neighbours are too, eroded `times` times (edges of the grid excluded). */
function erode(
  labels: Uint8Array,
  dims: [number, number, number],
  tissue: Tissue,
  times: number,
): Uint8Array {
  const [nx, ny, nz] = dims;
  let m = Uint8Array.from(labels, (t) => (t === tissue ? 1 : 0));
  for (let r = 0; r < times; r++) {
    const o = new Uint8Array(m.length);
    for (let z = 0; z < nz; z++)
      for (let y = 1; y < ny - 1; y++)
        for (let x = 1; x < nx - 1; x++) {
          const i = x + nx * (y + ny * z);
          const zOk = (z === 0 || m[i - nx * ny]) && (z === nz - 1 || m[i + nx * ny]);
          o[i] = m[i] && m[i - 1] && m[i + 1] && m[i - nx] && m[i + nx] && zOk ? 1 : 0;
        }
    m = o;
  }
  return m;
}

/** Mean squared in-plane gradient inside the body, over the variance there: high for noise and sharp edges. */
function roughness(v: Float32Array, mask: Float32Array, dims: [number, number, number]): number {
  const [nx, ny, nz] = dims;
  let s = 0;
  let q = 0;
  let c = 0;
  for (let i = 0; i < v.length; i++)
    if (mask[i]) {
      s += v[i];
      q += v[i] * v[i];
      c++;
    }
  const variance = q / c - (s / c) ** 2;
  let g = 0;
  let gc = 0;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny - 1; y++)
      for (let x = 0; x < nx - 1; x++) {
        const i = x + nx * (y + ny * z);
        if (mask[i] && mask[i + 1] && mask[i + nx]) {
          g += (v[i + 1] - v[i]) ** 2 + (v[i + nx] - v[i]) ** 2;
          gc++;
        }
      }
  return g / gc / variance;
}

describe('multi-modality phantom subjects', () => {
  it('leaves generatePhantomPair bit-identical', () => {
    // Hashes recorded from generatePhantomPair before multi-modality subjects existed.
    const expected = [
      {
        opts: { seed: 7, profile: 'site-b', size: 48, slices: 12, anatomy: 'head' as const },
        mr: '837f484a6a4ee41cfccb55a34b26c21c8fb5c56ee135131b0dcfbf8dc7c905b2',
        ct: 'd691f980e734edb7ac13f299ace3f50595bd8d5a94e71c4ba36e368c9322d97c',
        mask: 'f8000a69ef651ba56fd542c7248bd9f759730574f5931aece981c68ae7b266e5',
        labels: 'a5bc10fe3296bf7aa50e62ccd062f5367091e5470a06732f693de6fc9d516997',
      },
      {
        opts: { seed: 3, profile: 'site-c', size: 32, slices: 6, anatomy: 'pelvis' as const },
        mr: 'c87478856884d8cbf6a61051448ac2e7f70e4141981f4913b1c68c521cb95bc0',
        ct: '5d8a7984d9199a272a1e49212d3cd8223351106d2566652dfc4861b5df1f6814',
        mask: 'ce2543b2f9d5ffc202db3191eee403e78a306c6e26787647df25dcc0246fd74d',
        labels: 'fd20ebaebaded1427c35b9b7dde474d38086a44e35902e77dd643663a57e6d7f',
      },
    ];
    for (const e of expected) {
      const p = generatePhantomPair(e.opts);
      expect(sha256(p.mr.data), `mr ${e.opts.profile}`).toBe(e.mr);
      expect(sha256(p.ct.data), `ct ${e.opts.profile}`).toBe(e.ct);
      expect(sha256(p.mask.data), `mask ${e.opts.profile}`).toBe(e.mask);
      expect(sha256(p.labels), `labels ${e.opts.profile}`).toBe(e.labels);
    }
  });

  it('images one anatomy on one grid; mr and ct are the pair, each modality independent of the others', () => {
    const opts = { seed: 7, profile: 'site-b', size: 48, slices: 12, anatomy: 'head' as const };
    const pair = generatePhantomPair(opts);
    const all = generatePhantomSubject({ ...opts, modalities: ['mr', 't1', 't2', 'flair', 'pet', 'ct'] });
    const t1Only = generatePhantomSubject({ ...opts, modalities: ['t1'] });
    const petFlair = generatePhantomSubject({ ...opts, modalities: ['pet', 'flair'] });
    expect(Object.keys(all.volumes).sort()).toEqual(['ct', 'flair', 'mr', 'pet', 't1', 't2']);
    expect(Object.keys(t1Only.volumes)).toEqual(['t1']);
    expect(t1Only.pet).toBeUndefined();
    for (const s of [all, t1Only, petFlair]) {
      expect(same(s.labels, pair.labels)).toBe(true);
      expect(same(s.mask.data, pair.mask.data)).toBe(true);
      for (const v of Object.values(s.volumes)) expect(v && sameGeometry(v, pair.mr, 0)).toBe(true);
    }
    expect(same(all.volumes.mr!.data, pair.mr.data)).toBe(true);
    expect(same(all.volumes.ct!.data, pair.ct.data)).toBe(true);
    expect(same(t1Only.volumes.t1!.data, all.volumes.t1!.data)).toBe(true);
    expect(same(petFlair.volumes.pet!.data, all.volumes.pet!.data)).toBe(true);
    expect(same(petFlair.volumes.flair!.data, all.volumes.flair!.data)).toBe(true);
    expect(petFlair.pet).toEqual(all.pet);
    // Different sequences make different images, with independent noise.
    expect(same(all.volumes.t1!.data, all.volumes.mr!.data)).toBe(false);
    expect(same(all.volumes.t1!.data, all.volumes.t2!.data)).toBe(false);
    // Each sequence is its own acquisition: the background (pure noise, the image's 8x8 corners) of
    // two sequences is uncorrelated.
    const corner = (i: number) => {
      const x = i % 48;
      const y = Math.floor(i / 48) % 48;
      return (x < 8 || x >= 40) && (y < 8 || y >= 40);
    };
    const background = (m: 'mr' | 't1' | 't2') =>
      Array.from(all.volumes[m]!.data).filter((_, i) => corner(i));
    for (const [a, b] of [
      ['mr', 't1'],
      ['t1', 't2'],
    ] as const) {
      const x = background(a);
      const y = background(b);
      const mx = x.reduce((p, v) => p + v, 0) / x.length;
      const my = y.reduce((p, v) => p + v, 0) / y.length;
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < x.length; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) ** 2;
        syy += (y[i] - my) ** 2;
      }
      expect(Math.abs(sxy / Math.sqrt(sxx * syy)), `${a}/${b} background noise`).toBeLessThan(0.1);
    }
    expect(() => generatePhantomSubject({ ...opts, modalities: ['xray' as 'ct'] })).toThrow(
      /unknown modality "xray"/,
    );
    expect(() => generatePhantomSubject({ ...opts, modalities: [] })).toThrow(/one or more modalities/);
  });

  it('is deterministic for its seed, patient included', () => {
    const opts = { seed: 9, profile: 'site-a', size: 32, slices: 6, modalities: ['t2', 'pet'] as const };
    const a = generatePhantomSubject({ ...opts, modalities: [...opts.modalities] });
    const b = generatePhantomSubject({ ...opts, modalities: [...opts.modalities] });
    const c = generatePhantomSubject({ ...opts, seed: 10, modalities: [...opts.modalities] });
    expect(same(a.volumes.t2!.data, b.volumes.t2!.data)).toBe(true);
    expect(same(a.volumes.pet!.data, b.volumes.pet!.data)).toBe(true);
    expect(a.pet).toEqual(b.pet);
    expect(same(a.volumes.pet!.data, c.volumes.pet!.data)).toBe(false);
    expect(a.pet).not.toEqual(c.pet);
    for (const s of [a, c]) {
      expect(s.pet!.weightKg).toBeGreaterThanOrEqual(60);
      expect(s.pet!.weightKg).toBeLessThanOrEqual(90);
      expect(s.pet!.injectedDoseBq).toBeGreaterThanOrEqual(250e6);
      expect(s.pet!.injectedDoseBq).toBeLessThanOrEqual(400e6);
    }
  });

  it('times each sequence per profile, with FLAIR nulling CSF at the field strength', () => {
    for (const [name, profile] of Object.entries(SITE_PROFILES)) {
      const k = profile.fieldStrength;
      expect(mrSequence(name, 'mr')).toEqual({ kind: 'spin-echo', tr: profile.tr, te: profile.te });
      const t1 = mrSequence(name, 't1');
      const t2 = mrSequence(name, 't2');
      const flair = mrSequence(name, 'flair');
      expect(Math.abs(t1.tr / 500 - 1)).toBeLessThan(0.09);
      expect(Math.abs(t1.te / 15 - 1)).toBeLessThan(0.12);
      expect(Math.abs(t2.tr / 4000 - 1)).toBeLessThan(0.09);
      expect(Math.abs(t2.te / 100 - 1)).toBeLessThan(0.09);
      expect(Math.abs(flair.tr / 9000 - 1)).toBeLessThan(0.09);
      expect(Math.abs(flair.te / 120 - 1)).toBeLessThan(0.09);
      expect(flair.ti).toBeGreaterThan(2000);
      expect(flair.ti).toBeLessThan(2800);
      const ir = (t: Tissue) => inversionRecovery(TISSUES[t], k, flair.tr, flair.te, flair.ti!);
      expect(ir(Tissue.Csf) / ir(Tissue.WhiteMatter), name).toBeLessThan(0.01);
    }
    expect(mrSequence('site-a', 'flair')).not.toEqual(mrSequence('site-b', 'flair'));
  });

  const subjects = new Map<string, PhantomSubject>();
  // Seed 138 puts a large lesion into the slab, so its PET uptake is not lost to partial volume.
  const headSubject = (profile: string) => {
    if (!subjects.has(profile))
      subjects.set(
        profile,
        generatePhantomSubject({
          seed: 138,
          profile,
          size: 96,
          slices: 12,
          anatomy: 'head',
          modalities: ['t1', 't2', 'flair', 'pet'],
        }),
      );
    return subjects.get(profile)!;
  };

  it('gives each sequence the tissue contrast physics says, at 1.5 T and 3 T', () => {
    for (const profile of ['site-a', 'site-b']) {
      const s = headSubject(profile);
      const lesionVoxels = s.labels.filter((t) => t === Tissue.Lesion).length;
      expect(lesionVoxels).toBeGreaterThan(50);
      const t1 = meansByLabel(s.volumes.t1!.data, s.labels);
      const t2 = meansByLabel(s.volumes.t2!.data, s.labels);
      const flair = meansByLabel(s.volumes.flair!.data, s.labels);
      const { GreyMatter: gm, WhiteMatter: wm, Csf: csf, Lesion: lesion } = Tissue;
      expect(t1[wm], `${profile} T1 WM > GM`).toBeGreaterThan(t1[gm]);
      expect(t1[gm], `${profile} T1 GM > CSF`).toBeGreaterThan(t1[csf]);
      expect(t2[csf], `${profile} T2 CSF > GM`).toBeGreaterThan(t2[gm]);
      expect(t2[gm], `${profile} T2 GM > WM`).toBeGreaterThan(t2[wm]);
      expect(flair[csf], `${profile} FLAIR CSF darkest`).toBeLessThan(0.5 * Math.min(flair[gm], flair[wm]));
      expect(flair[lesion], `${profile} FLAIR lesion > WM`).toBeGreaterThan(1.2 * flair[wm]);
      expect(flair[csf], `${profile} FLAIR nulls CSF, T2 does not`).toBeLessThan(0.3 * t2[csf]);
      const suvPerBq = (s.pet!.weightKg * 1000) / s.pet!.injectedDoseBq;
      const suv = meansByLabel(s.volumes.pet!.data, s.labels, suvPerBq);
      expect(suv[lesion], `${profile} PET lesion > GM`).toBeGreaterThan(suv[gm]);
      expect(suv[gm], `${profile} PET GM > WM`).toBeGreaterThan(suv[wm]);
      expect(suv[wm], `${profile} PET WM > CSF`).toBeGreaterThan(suv[csf]);
    }
  });

  it('scales PET to Bq/mL by dose and weight, at a resolution coarser than MR', () => {
    const s = headSubject('site-a');
    const pet = s.volumes.pet!;
    const suvPerBq = (s.pet!.weightKg * 1000) / s.pet!.injectedDoseBq;
    const interiorSuv = (t: Tissue) => {
      const core = erode(s.labels, pet.dims, t, 1);
      let sum = 0;
      let n = 0;
      core.forEach((b, i) => {
        if (b) {
          sum += pet.data[i] * suvPerBq;
          n++;
        }
      });
      expect(n, Tissue[t]).toBeGreaterThan(500);
      return sum / n;
    };
    expect(Math.abs(interiorSuv(Tissue.GreyMatter) / 8 - 1)).toBeLessThan(0.25);
    expect(Math.abs(interiorSuv(Tissue.WhiteMatter) / 3 - 1)).toBeLessThan(0.1);
    // Air holds no activity.
    expect(meansByLabel(pet.data, s.labels, suvPerBq)[Tissue.Air]).toBeLessThan(0.1);
    const petRough = roughness(pet.data, s.mask.data, pet.dims);
    const t1Rough = roughness(s.volumes.t1!.data, s.mask.data, pet.dims);
    expect(petRough).toBeLessThan(0.4 * t1Rough);
  });

  it('writes the requested modalities, CT as int16, and the PET sidecar', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fedsynth-phantom-'));
    try {
      const base = { out, subjects: 1, seed: 9, profile: 'site-c', size: 32, slices: 4 };
      const [id] = await writePhantomDataset({ ...base, modalities: ['t1', 'pet', 'ct'] });
      const dir = join(out, id);
      expect((await readdir(dir)).sort()).toEqual([
        'ct.nii.gz',
        'mask.nii.gz',
        'pet.json',
        'pet.nii.gz',
        't1.nii.gz',
      ]);
      const s = generatePhantomSubject({
        seed: subSeed(9, 'site-c/0'),
        profile: 'site-c',
        size: 32,
        slices: 4,
        modalities: ['t1', 'pet', 'ct'],
      });
      expect(JSON.parse(await readFile(join(dir, 'pet.json'), 'utf8'))).toEqual({
        BodyWeight: s.pet!.weightKg,
        InjectedRadioactivity: s.pet!.injectedDoseBq / 1e6,
        InjectedRadioactivityUnits: 'MBq',
        Units: 'Bq/mL',
      });
      const datatype = async (f: string) => gunzipSync(await readFile(join(dir, f))).readInt16LE(70);
      expect(await datatype('ct.nii.gz')).toBe(4);
      expect(await datatype('pet.nii.gz')).toBe(16);
      expect(await datatype('t1.nii.gz')).toBe(16);
      expect(same((await readNifti(join(dir, 'pet.nii.gz'))).data, s.volumes.pet!.data)).toBe(true);
      // int16 holds the HU exactly (-0 reads back as 0, hence a comparison by value).
      const ct = (await readNifti(join(dir, 'ct.nii.gz'))).data;
      expect(ct.every((v, k) => v === s.volumes.ct!.data[k])).toBe(true);

      // The default stays mr, ct and mask, the pair's images.
      const plain = join(out, 'plain');
      const [pid] = await writePhantomDataset({ ...base, out: plain });
      expect((await readdir(join(plain, pid))).sort()).toEqual(['ct.nii.gz', 'mask.nii.gz', 'mr.nii.gz']);
      const pair = generatePhantomPair({
        seed: subSeed(9, 'site-c/0'),
        profile: 'site-c',
        size: 32,
        slices: 4,
      });
      expect(same((await readNifti(join(plain, pid, 'mr.nii.gz'))).data, pair.mr.data)).toBe(true);
      await expect(
        writePhantomDataset({ ...base, out: join(out, 'bad'), modalities: ['us' as 'mr'] }),
      ).rejects.toThrow(/unknown modality "us"/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
