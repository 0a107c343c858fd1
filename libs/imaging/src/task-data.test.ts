import { describe, expect, it } from 'vitest';
import { augmentPair } from './augment';
import { standardizeMr } from './mr-standardize';
import { normalizeFor, suvToUnit, unitToNative, unitToSuv } from './normalize';
import { generatePhantomPair } from './phantom';
import { mulberry32 } from './rng';
import { parseTask } from './task';
import { conditionOf, normalizeTaskSubject, type TaskSubject, taskSlicesOf } from './task-data';
import { diagonalAffine, type Volume } from './volume';

const vol = (dims: [number, number, number], f: (x: number, y: number, z: number) => number): Volume => {
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let z = 0; z < dims[2]; z++)
    for (let y = 0; y < dims[1]; y++)
      for (let x = 0; x < dims[0]; x++) data[x + dims[0] * (y + dims[1] * z)] = f(x, y, z);
  return { data, dims, spacing: [1, 1, 1], affine: diagonalAffine([1, 1, 1]) };
};

// A 12 x 12 x 5 subject: a 6 x 6 "body" in the middle of every slice.
const inBody = (x: number, y: number) => x >= 3 && x < 9 && y >= 3 && y < 9;
const dims: [number, number, number] = [12, 12, 5];
const subject = (): TaskSubject => ({
  id: 's1',
  volumes: {
    t1: vol(dims, (x, y, z) => (inBody(x, y) ? 100 + 10 * z + x : 2)),
    t2: vol(dims, (x, y, z) => (inBody(x, y) ? 300 - 10 * z + y : 3)),
    ct: vol(dims, (x, y) => (inBody(x, y) ? 40 : -1000)),
    pet: vol(dims, (x, y) => (inBody(x, y) ? 5000 : 0)),
    flair: vol(dims, (x, y, z) => (inBody(x, y) ? 50 + z : 1)),
  },
  origins: { t1: 's1/t1.nii.gz', t2: 's1/t2.nii.gz', ct: 's1/ct.nii.gz', pet: 's1/pet.nii.gz' },
  suvFactor: 1e-3,
});

describe('PET scale', () => {
  it('maps SUV to [-1, 1] by log(1 + SUV) / log(21) and back', () => {
    const u = suvToUnit(Float32Array.of(0, 1, 4, 20, 50, -3));
    const l21 = Math.log(21);
    const want = [-1, (Math.log(2) / l21) * 2 - 1, (Math.log(5) / l21) * 2 - 1, 1, 1, -1];
    for (let i = 0; i < want.length; i++) expect(u[i]).toBeCloseTo(want[i], 6);
    const back = unitToSuv(suvToUnit(Float32Array.of(0, 0.5, 3, 12.5)));
    expect(Array.from(back).map((v) => Number(v.toFixed(4)))).toEqual([0, 0.5, 3, 12.5]);
    // Activity 5000 Bq/mL at 1e-3 g/Bq... i.e. SUV 5.
    expect(normalizeFor('pet', Float32Array.of(5000), { suvFactor: 1e-3 })[0]).toBeCloseTo(
      (Math.log(6) / l21) * 2 - 1,
      6,
    );
    expect(() => normalizeFor('pet', Float32Array.of(1))).toThrow(/weight and injected dose/);
    expect(Array.from(unitToNative('mr', Float32Array.of(-1, 0, 1, 3)))).toEqual([0, 0.5, 1, 1]);
  });
});

describe('task subjects', () => {
  it('stacks two sources as channels, centre slice then neighbours, clamped at the ends (2.5D)', () => {
    const task = parseTask('t1+t2-to-ct:2.5d=1');
    const n = normalizeTaskSubject(subject(), task);
    // The mask comes from CT > -500 HU: the 6 x 6 body in each of the 5 slices.
    expect(n.mask.reduce((a, v) => a + v, 0)).toBe(36 * 5);
    const size = 12;
    const c = conditionOf(n, 0, 1, size);
    const ch = 6; // 2 sources x (1 + 2 neighbours)
    expect(c.length).toBe(size * size * ch);
    const at = (x: number, y: number, k: number) => c[(y * size + x) * ch + k];
    const t1 = (x: number, y: number, z: number) => n.sources[0][x + 12 * (y + 12 * z)];
    const t2 = (x: number, y: number, z: number) => n.sources[1][x + 12 * (y + 12 * z)];
    // Channel order for z = 0: t1[z], t1[z-1 -> 0], t1[z+1], t2[z], t2[0], t2[z+1].
    expect(at(5, 6, 0)).toBe(t1(5, 6, 0));
    expect(at(5, 6, 1)).toBe(t1(5, 6, 0));
    expect(at(5, 6, 2)).toBe(t1(5, 6, 1));
    expect(at(5, 6, 3)).toBe(t2(5, 6, 0));
    expect(at(5, 6, 5)).toBe(t2(5, 6, 1));
    expect(t1(5, 6, 1)).not.toBe(t1(5, 6, 0));
    const slices = taskSlicesOf(n, task, { size, minBodyFraction: 0.1 });
    expect(slices).toHaveLength(5);
    expect(slices[2].channels).toBe(6);
    // The CT target on the HU window: 40 HU -> (40 + 1024) / 4024 * 2 - 1.
    expect(slices[2].target[6 * size + 6]).toBeCloseTo(((40 + 1024) / 4024) * 2 - 1, 6);
  });

  it('normalizes an MR target by its percentiles and finds the body without CT (Otsu)', () => {
    const n = normalizeTaskSubject(subject(), parseTask('t1-to-flair'));
    // Otsu on a 3x3 mean of the first MR volume (the FLAIR target): the body, give or take its rim.
    const count = n.mask.reduce((a, v) => a + v, 0);
    expect(count).toBeGreaterThan(36 * 5 * 0.85);
    expect(count).toBeLessThanOrEqual(36 * 5);
    expect(n.mask[6 + 12 * 6]).toBe(1);
    expect(n.mask[0]).toBe(0);
    // FLAIR inside the body is 50..54: percentiles 0.5 % and 99.5 % of those, lo capped at 0.
    expect(Math.max(...n.target)).toBe(1);
    expect(n.target[6 + 12 * (6 + 12 * 4)]).toBeCloseTo(((54 - 0) / (54 - 0)) * 2 - 1, 2);
  });

  it("scales every MR volume, sources and an MR target, by the task's MR scale", () => {
    const s = subject();
    const lm = normalizeTaskSubject(s, parseTask('t1+t2-to-flair:mr=landmarks'));
    const pct = normalizeTaskSubject(s, parseTask('t1+t2-to-flair'));
    const std = (m: 't1' | 't2' | 'flair') => standardizeMr(s.volumes[m]!.data, lm.mask).data;
    expect(lm.mask).toEqual(pct.mask);
    expect(lm.sources).toEqual([std('t1'), std('t2')]);
    expect(lm.target).toEqual(std('flair'));
    expect(lm.target).not.toEqual(pct.target);
    // CT and PET do not depend on it.
    const ct = parseTask('t1+pet-to-ct:mr=landmarks');
    const n = normalizeTaskSubject(s, ct);
    const p = normalizeTaskSubject(s, parseTask('t1+pet-to-ct'));
    expect(n.sources[1]).toEqual(p.sources[1]);
    expect(n.target).toEqual(p.target);
    // A body mask that selects nothing leaves landmarks undefined: the error names the subject.
    expect(() =>
      normalizeTaskSubject({ ...s, mask: vol(dims, () => 0) }, parseTask('t1-to-ct:mr=landmarks')),
    ).toThrow(/subject s1: t1 s1\/t1.nii.gz: the body mask selects no voxel/);
  });

  it('brings phantoms of different scanner profiles closer with landmarks than with percentiles', () => {
    const tasks = [parseTask('mr-to-ct'), parseTask('mr-to-ct:mr=landmarks')];
    /**
     * Two profiles imaging the same anatomy (same seed, one slice, so that the grids match although
     * slice thickness differs), each normalized both ways. Per scale, averaged over seeds 1 and 2:
     * the mean absolute difference of the MR on the model scale inside the body (voxel by voxel),
     * and the same of each tissue's mean (weighted by its voxels): the contrast, which is what
     * standardization is for, without the noise.
     */
    const gaps = (a: string, b: string, anatomy: 'head' | 'pelvis') =>
      tasks.map((task) => {
        let voxel = 0;
        let tissue = 0;
        for (const seed of [1, 2]) {
          const [na, nb] = [a, b].map((profile) => {
            const p = generatePhantomPair({ seed, profile, size: 64, slices: 1, anatomy });
            const volumes = { mr: p.mr, ct: p.ct };
            return { ...normalizeTaskSubject({ id: profile, volumes, origins: {}, mask: p.mask }, task), p };
          });
          const sum = [new Float64Array(16), new Float64Array(16), new Float64Array(16)];
          let d = 0;
          let n = 0;
          for (let i = 0; i < na.mask.length; i++) {
            if (!na.mask[i]) continue;
            const [x, y] = [na.sources[0][i], nb.sources[0][i]];
            d += Math.abs(x - y);
            n++;
            const t = na.p.labels[i];
            sum[0][t] += x;
            sum[1][t] += y;
            sum[2][t]++;
          }
          let dt = 0;
          for (let t = 0; t < 16; t++) if (sum[2][t]) dt += Math.abs(sum[0][t] - sum[1][t]);
          voxel += d / n / 2;
          tissue += dt / n / 2;
        }
        return { voxel, tissue };
      });
    // site-a against site-c (1.5 T, shorter TR, longer TE, three times the noise), pelvis:
    // observed voxel 0.1026 with percentiles, 0.0710 with landmarks; tissue means 0.0993, 0.0148.
    const [pa, la] = gaps('site-a', 'site-c', 'pelvis');
    expect(la.voxel).toBeLessThan(0.8 * pa.voxel);
    expect(la.tissue).toBeLessThan(0.3 * pa.tissue);
    // site-a against site-b (3 T, strong bias field), head: voxel 0.2144 -> 0.1002, tissue means
    // 0.2101 -> 0.0690. (Heads of site-a and site-c, whose contrasts differ little, gain nothing:
    // voxel 0.0691 -> 0.1054, tissue means 0.0541 -> 0.0607; the deciles of large uniform tissues
    // such as white matter are spread evenly over the scale, and so is site-c's noise in them.)
    const [pb, lb] = gaps('site-a', 'site-b', 'head');
    expect(lb.voxel).toBeLessThan(0.6 * pb.voxel);
    expect(lb.tissue).toBeLessThan(0.4 * pb.tissue);
  });

  it('names the missing modality, a grid that differs, and PET without a dose', () => {
    const s = subject();
    delete s.volumes.t2;
    expect(() => normalizeTaskSubject(s, parseTask('t1+t2-to-ct'))).toThrow(
      /subject s1 has no t2 \(the task needs t1, t2, ct\)/,
    );
    const g = subject();
    g.volumes.ct = vol([12, 12, 4], () => 0);
    expect(() => normalizeTaskSubject(g, parseTask('t1-to-ct'))).toThrow(
      /ct s1\/ct.nii.gz is 12x12x4 but t1/,
    );
    const p = subject();
    delete p.suvFactor;
    expect(() => normalizeTaskSubject(p, parseTask('pet-to-t1'))).toThrow(
      /no patient weight and injected dose/,
    );
    const bad = subject();
    bad.volumes.t1!.data[7] = Number.NaN;
    expect(() => normalizeTaskSubject(bad, parseTask('t1-to-ct'))).toThrow(/subject s1: t1 s1\/t1.nii.gz/);
  });
});

describe('augmentation of several channels', () => {
  it('moves every channel alike, and without noise leaves a two-channel copy of one image as two equal channels', () => {
    const size = 16;
    const one = Float32Array.from({ length: size * size }, (_, i) => Math.sin(i * 0.3) * 0.8);
    const two = new Float32Array(size * size * 2);
    for (let i = 0; i < size * size; i++) {
      two[2 * i] = one[i];
      two[2 * i + 1] = one[i];
    }
    const mask = new Uint8Array(size * size).fill(1);
    const target = Float32Array.from(one, (v) => -v);
    const base = { subjectId: 's', sliceIndex: 0, size, target, mask };
    // Every augmentation but the noise, which is drawn for each channel on its own.
    const a = augmentPair({ ...base, source: one }, mulberry32(3), { noise: 0, lowRes: 1 });
    const b = augmentPair({ ...base, source: two, channels: 2 }, mulberry32(3), { noise: 0, lowRes: 1 });
    for (let i = 0; i < size * size; i++) {
      expect(b.source[2 * i]).toBeCloseTo(a.source[i], 6);
      expect(b.source[2 * i + 1]).toBeCloseTo(a.source[i], 6);
    }
    expect(Array.from(b.target)).toEqual(Array.from(a.target));
    // With noise, the two channels (two modalities, or two slices) get noise of their own.
    const n = augmentPair({ ...base, source: two, channels: 2 }, mulberry32(3), { noise: 0.05 });
    let differ = 0;
    for (let i = 0; i < size * size; i++)
      if (Math.abs(n.source[2 * i] - n.source[2 * i + 1]) > 1e-6) differ++;
    expect(differ).toBeGreaterThan((size * size) / 2);
  });

  it('with only a bias field, multiplies the [0, 1] image by a smooth positive field within its amplitude', () => {
    const size = 16;
    const source = new Float32Array(size * size).fill(0); // 0.5 on [0, 1]
    const pair = {
      subjectId: 's',
      sliceIndex: 0,
      size,
      source,
      target: new Float32Array(size * size),
      mask: new Uint8Array(size * size),
    };
    const a = augmentPair(pair, mulberry32(11), {
      flip: 0,
      rotateDeg: 0,
      scale: 0,
      intensityScale: 0,
      intensityShift: 0,
      gamma: 0,
      biasField: 0.4,
    });
    const field = Array.from(a.source, (v) => (v + 1) / 2 / 0.5);
    const lo = Math.min(...field);
    const hi = Math.max(...field);
    expect(lo).toBeGreaterThan(Math.exp(-0.2) - 1e-6);
    expect(hi).toBeLessThan(Math.exp(0.2) + 1e-6);
    expect(hi - lo).toBeGreaterThan(0.01);
    // Smooth: neighbouring pixels differ by far less than the field's range.
    let step = 0;
    for (let i = 1; i < size; i++) step = Math.max(step, Math.abs(field[i] - field[i - 1]));
    expect(step).toBeLessThan((hi - lo) / 3);
  });
});
