import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDicomSeries } from './dicom-write';
import { ImagingError } from './errors';
import { gaussianBlur3d } from './filters';
import { writeNifti } from './nifti';
import { gaussian, mulberry32, subSeed } from './rng';
import { MODALITIES, type Modality } from './task';
import { diagonalAffine, type Volume } from './volume';

/** Tissue labels of the phantom label maps. */
export enum Tissue {
  Air = 0,
  Fat = 1,
  Muscle = 2,
  CorticalBone = 3,
  Marrow = 4,
  Csf = 5,
  GreyMatter = 6,
  WhiteMatter = 7,
  Lesion = 8,
}

interface TissueProps {
  /** T1 and T2 relaxation times in ms at 1.5 T and 3 T, proton density (relative). */
  t1: [number, number];
  t2: [number, number];
  pd: number;
  /** Mean HU and the standard deviation of its texture. */
  hu: number;
  huTexture: number;
}

/**
 * Relaxation times and densities from the MRI literature (e.g. Bojorquez et al. 2017 for 3 T,
 * Stanisz et al. 2005 for 1.5 T, rounded); HU from standard CT tables.
 */
export const TISSUES: Record<Tissue, TissueProps> = {
  [Tissue.Air]: { t1: [1, 1], t2: [1, 1], pd: 0, hu: -1000, huTexture: 5 },
  [Tissue.Fat]: { t1: [260, 380], t2: [85, 70], pd: 0.9, hu: -100, huTexture: 12 },
  [Tissue.Muscle]: { t1: [870, 1400], t2: [47, 40], pd: 0.7, hu: 45, huTexture: 10 },
  [Tissue.CorticalBone]: { t1: [1000, 1200], t2: [1, 1], pd: 0.05, hu: 1300, huTexture: 150 },
  [Tissue.Marrow]: { t1: [550, 600], t2: [50, 45], pd: 0.8, hu: 280, huTexture: 60 },
  [Tissue.Csf]: { t1: [4000, 4300], t2: [2000, 1800], pd: 1, hu: 8, huTexture: 4 },
  [Tissue.GreyMatter]: { t1: [1000, 1600], t2: [95, 85], pd: 0.8, hu: 38, huTexture: 4 },
  [Tissue.WhiteMatter]: { t1: [650, 1000], t2: [75, 70], pd: 0.7, hu: 28, huTexture: 4 },
  [Tissue.Lesion]: { t1: [1200, 1800], t2: [150, 140], pd: 0.85, hu: 34, huTexture: 5 },
};

/** A scanner: field strength, sequence, bias field, noise and resolution. */
export interface SiteProfile {
  description: string;
  fieldStrength: 1.5 | 3;
  /** Repetition and echo time of the spin-echo sequence, ms. */
  tr: number;
  te: number;
  /** Peak-to-peak amplitude of the smooth multiplicative bias field (0.2 = +/-10 %). */
  bias: number;
  /** Rician noise level relative to the brightest tissue. */
  noise: number;
  /** Slice thickness, mm. */
  sliceThickness: number;
  /** In-plane resolution relative to the output grid (0.7 = acquired at 70 % resolution, then interpolated). */
  resolution: number;
  /** CT noise, HU. */
  ctNoise: number;
}

/** Built-in scanner profiles; site-a/b/c are deliberately non-IID, the t2 presets change contrast. */
export const SITE_PROFILES: Record<string, SiteProfile> = {
  'site-a': {
    description: '1.5 T, T1-weighted spin echo, low noise',
    fieldStrength: 1.5,
    tr: 500,
    te: 15,
    bias: 0.15,
    noise: 0.015,
    sliceThickness: 3,
    resolution: 1,
    ctNoise: 12,
  },
  'site-b': {
    description: '3 T, T1-weighted, strong bias field, coarser in-plane resolution',
    fieldStrength: 3,
    tr: 650,
    te: 10,
    bias: 0.35,
    noise: 0.03,
    sliceThickness: 2.5,
    resolution: 0.7,
    ctNoise: 18,
  },
  'site-c': {
    description: '1.5 T, T1-weighted, short TR, noisy',
    fieldStrength: 1.5,
    tr: 400,
    te: 20,
    bias: 0.2,
    noise: 0.045,
    sliceThickness: 4,
    resolution: 0.85,
    ctNoise: 25,
  },
  t1w: {
    description: 'generic T1-weighted preset (1.5 T, TR 500, TE 15)',
    fieldStrength: 1.5,
    tr: 500,
    te: 15,
    bias: 0.1,
    noise: 0.02,
    sliceThickness: 3,
    resolution: 1,
    ctNoise: 15,
  },
  t2w: {
    description: 'generic T2-weighted preset (1.5 T, TR 4000, TE 100)',
    fieldStrength: 1.5,
    tr: 4000,
    te: 100,
    bias: 0.1,
    noise: 0.02,
    sliceThickness: 3,
    resolution: 1,
    ctNoise: 15,
  },
};

/** The spin-echo signal equation S = PD (1 - exp(-TR/T1)) exp(-TE/T2). */
export function spinEcho(t: TissueProps, field: 1.5 | 3, tr: number, te: number): number {
  const k = field === 3 ? 1 : 0;
  return t.pd * (1 - Math.exp(-tr / t.t1[k])) * Math.exp(-te / t.t2[k]);
}

interface Ellipsoid {
  c: [number, number, number];
  r: [number, number, number];
}

/** (x/rx)^2 + ... for a point in mm; < 1 inside. */
function ell(e: Ellipsoid, x: number, y: number, z: number): number {
  const dx = (x - e.c[0]) / e.r[0];
  const dy = (y - e.c[1]) / e.r[1];
  const dz = (z - e.c[2]) / e.r[2];
  return dx * dx + dy * dy + dz * dz;
}

function shrink(e: Ellipsoid, mm: number): Ellipsoid {
  return { c: e.c, r: [Math.max(1, e.r[0] - mm), Math.max(1, e.r[1] - mm), Math.max(1, e.r[2] - mm)] };
}

type Labeler = (x: number, y: number, z: number) => Tissue;

function headLabeler(rnd: () => number): { label: Labeler; fov: number } {
  const j = (s: number) => 1 + (rnd() - 0.5) * 2 * s;
  const skin: Ellipsoid = {
    c: [(rnd() - 0.5) * 6, (rnd() - 0.5) * 6, -10],
    r: [72 * j(0.08), 92 * j(0.08), 100 * j(0.06)],
  };
  const fat = shrink(skin, 2.5 * j(0.2));
  const bone = shrink(fat, 3 * j(0.2));
  const marrow = shrink(bone, 2.5 * j(0.2));
  const inner = shrink(marrow, 2.5 * j(0.2));
  const csf = shrink(inner, 2.5 * j(0.3));
  const grey = shrink(csf, 3.5 * j(0.2));
  const ventricles: Ellipsoid[] = [-1, 1].map((s) => ({
    c: [s * 9 * j(0.2), 4 * j(0.3), -5 + 6 * j(0.3)],
    r: [5 * j(0.3), 20 * j(0.2), 12 * j(0.2)],
  }));
  const lesions: Ellipsoid[] = Array.from({ length: Math.floor(rnd() * 4) }, () => {
    const a = rnd() * Math.PI * 2;
    const d = 20 + rnd() * 25;
    const r = 2 + rnd() * 5;
    return { c: [Math.cos(a) * d * 0.6, Math.sin(a) * d, -20 + rnd() * 40], r: [r, r, r] };
  });
  const sinus: Ellipsoid = { c: [0, 70 * j(0.05), -55], r: [14 * j(0.2), 10 * j(0.2), 14 * j(0.2)] };
  const label: Labeler = (x, y, z) => {
    if (ell(skin, x, y, z) >= 1) return Tissue.Air;
    if (ell(sinus, x, y, z) < 1) return Tissue.Air;
    if (ell(fat, x, y, z) >= 1) return Tissue.Muscle; // scalp/skin
    if (ell(bone, x, y, z) >= 1) return Tissue.Fat;
    if (ell(marrow, x, y, z) >= 1) return Tissue.CorticalBone;
    if (ell(inner, x, y, z) >= 1) return Tissue.Marrow;
    if (ell(csf, x, y, z) >= 1) return Tissue.CorticalBone;
    if (ell(grey, x, y, z) >= 1) return Tissue.Csf;
    for (const v of ventricles) if (ell(v, x, y, z) < 1) return Tissue.Csf;
    for (const l of lesions) if (ell(l, x, y, z) < 1) return Tissue.Lesion;
    // A wavy grey/white boundary, like cortical folding.
    const theta = Math.atan2(y, x);
    const fold = 1 + 0.12 * Math.sin(7 * theta + z * 0.15);
    return ell(shrink(grey, 6), x, y, z) * fold >= 1 ? Tissue.GreyMatter : Tissue.WhiteMatter;
  };
  return { label, fov: 240 };
}

function pelvisLabeler(rnd: () => number): { label: Labeler; fov: number } {
  const j = (s: number) => 1 + (rnd() - 0.5) * 2 * s;
  const body: Ellipsoid = { c: [0, (rnd() - 0.5) * 10, 0], r: [165 * j(0.1), 115 * j(0.1), 400] };
  const subcut = shrink(body, 12 * j(0.5));
  const femurs: Ellipsoid[] = [-1, 1].map((s) => ({
    c: [s * 85 * j(0.06), 5 * j(0.5), 0],
    r: [22 * j(0.1), 22 * j(0.1), 400],
  }));
  const iliac: Ellipsoid[] = [-1, 1].map((s) => ({
    c: [s * 60 * j(0.08), -25 * j(0.2), 0],
    r: [18 * j(0.15), 40 * j(0.1), 400],
  }));
  const sacrum: Ellipsoid = { c: [0, -70 * j(0.06), 0], r: [28 * j(0.1), 15 * j(0.15), 400] };
  const bladder: Ellipsoid = { c: [0, 40 * j(0.1), 0], r: [35 * j(0.2), 25 * j(0.2), 400] };
  const rectum: Ellipsoid = { c: [0, -42 * j(0.08), 0], r: [10 * j(0.3), 8 * j(0.3), 400] };
  const boneRing = (e: Ellipsoid, x: number, y: number, z: number): Tissue | null => {
    const v = ell(e, x, y, z);
    if (v >= 1) return null;
    return ell(shrink(e, 4), x, y, z) >= 1 ? Tissue.CorticalBone : Tissue.Marrow;
  };
  const label: Labeler = (x, y, z) => {
    if (ell(body, x, y, z) >= 1) return Tissue.Air;
    if (ell(subcut, x, y, z) >= 1) return Tissue.Fat;
    for (const b of [...femurs, ...iliac, sacrum]) {
      const t = boneRing(b, x, y, z);
      if (t !== null) return t;
    }
    if (ell(bladder, x, y, z) < 1) return Tissue.Csf; // urine: water-like
    if (ell(rectum, x, y, z) < 1) return Tissue.Air;
    return Tissue.Muscle;
  };
  return { label, fov: 400 };
}

/** Options of one phantom subject. */
export interface PhantomOptions {
  seed: number;
  profile: string;
  /** In-plane size (voxels). */
  size: number;
  anatomy?: 'head' | 'pelvis';
  /** Number of axial slices (default: size / 4, at least 8). */
  slices?: number;
}

/** The MR modalities of a phantom subject; `mr` is the profile's own spin echo. */
export type MrModality = 'mr' | 't1' | 't2' | 'flair';

/** Timing of an MR sequence, ms; `ti` (inversion time) for inversion recovery only. */
export interface MrSequence {
  kind: 'spin-echo' | 'inversion-recovery';
  tr: number;
  te: number;
  ti?: number;
}

/** Standard timing of the weighted sequences, before the per-profile shift. */
const STANDARD_SEQUENCES: Record<'t1' | 't2' | 'flair', MrSequence> = {
  t1: { kind: 'spin-echo', tr: 500, te: 15 },
  t2: { kind: 'spin-echo', tr: 4000, te: 100 },
  flair: { kind: 'inversion-recovery', tr: 9000, te: 120 },
};

/** Largest relative shift of TR and TE between profiles. */
const SEQUENCE_SHIFT = 0.08;

/** The inversion-recovery magnitude signal |PD (1 - 2 exp(-TI/T1) + exp(-TR/T1)) exp(-TE/T2)|. */
export function inversionRecovery(
  t: TissueProps,
  field: 1.5 | 3,
  tr: number,
  te: number,
  ti: number,
): number {
  const k = field === 3 ? 1 : 0;
  const t1 = t.t1[k];
  return Math.abs(t.pd * (1 - 2 * Math.exp(-ti / t1) + Math.exp(-tr / t1)) * Math.exp(-te / t.t2[k]));
}

/** The inversion time that nulls a tissue of the given T1 at repetition time TR: T1 ln(2 / (1 + exp(-TR/T1))). */
export function nullingTi(t1: number, tr: number): number {
  return t1 * Math.log(2 / (1 + Math.exp(-tr / t1)));
}

/**
 * The sequence a profile's scanner runs for an MR modality. `mr` is the profile's own spin echo;
 * `t1`, `t2` and `flair` take the standard timing (T1w TR 500 / TE 15, T2w 4000 / 100, FLAIR
 * 9000 / 120 ms) shifted by up to +/-8 %, fixed per profile name, since sites set their protocols
 * differently. FLAIR's inversion time nulls CSF at the profile's field strength.
 */
export function mrSequence(profileName: string, modality: MrModality): MrSequence {
  const profile = profileOf(profileName);
  if (modality === 'mr') return { kind: 'spin-echo', tr: profile.tr, te: profile.te };
  const base = STANDARD_SEQUENCES[modality];
  const rnd = mulberry32(subSeed(0, `sequence/${profileName}/${modality}`));
  const shift = () => 1 + (rnd() - 0.5) * 2 * SEQUENCE_SHIFT;
  const tr = Math.round(base.tr * shift());
  const te = Math.round(base.te * shift());
  if (base.kind === 'spin-echo') return { kind: 'spin-echo', tr, te };
  const csfT1 = TISSUES[Tissue.Csf].t1[profile.fieldStrength === 3 ? 1 : 0];
  return { kind: 'inversion-recovery', tr, te, ti: Math.round(nullingTi(csfT1, tr)) };
}

/** FDG standardized uptake value (activity / (injected dose / body weight)) per tissue. */
export const PET_SUV: Record<Tissue, number> = {
  [Tissue.Air]: 0,
  [Tissue.Fat]: 0.5,
  [Tissue.Muscle]: 1,
  [Tissue.CorticalBone]: 0.7,
  [Tissue.Marrow]: 1.5,
  [Tissue.Csf]: 0.3,
  [Tissue.GreyMatter]: 8,
  [Tissue.WhiteMatter]: 3,
  [Tissue.Lesion]: 12,
};

/** Urine, the pelvis phantom's water-like label: FDG is excreted by the kidneys, so the bladder is hot. */
const URINE_SUV = 20;

/** Spatial resolution of the PET scanner (FWHM, mm), in plane and through plane. */
export const PET_FWHM_MM = 6;

/**
 * Effective detected counts per Bq of activity in a voxel over the scan (sensitivity, scan time and
 * the reconstruction's noise amplification together): about 15 % voxel noise in white matter after
 * the PET resolution blur, on any grid.
 */
const PET_COUNTS_PER_BQ = 0.006;

/** The PET patient: body weight (kg) and injected FDG activity (Bq), the image decay corrected to the injection. */
type SubjectDose = { weightKg: number; injectedDoseBq: number };

/** Options of a multi-modality phantom subject: a phantom's options and the modalities to image. */
export type PhantomSubjectOptions = PhantomOptions & { modalities: Modality[] };

/** One phantom subject imaged with several modalities, all on one grid from one labelled anatomy. */
export interface PhantomSubject {
  volumes: Partial<Record<Modality, Volume>>;
  mask: Volume;
  labels: Uint8Array;
  /** The PET patient's weight (kg) and injected dose (Bq), present when `pet` was imaged. */
  pet?: { weightKg: number; injectedDoseBq: number };
}

function profileOf(name: string): SiteProfile {
  const profile = SITE_PROFILES[name];
  if (!profile)
    throw new ImagingError(
      'INVALID_ARGUMENT',
      `unknown profile "${name}"; known: ${Object.keys(SITE_PROFILES).join(', ')}`,
    );
  return profile;
}

function checkModalities(modalities: unknown): Modality[] {
  if (!Array.isArray(modalities) || modalities.length === 0)
    throw new ImagingError('INVALID_ARGUMENT', 'modalities must list one or more modalities');
  for (const m of modalities)
    if (typeof m !== 'string' || !(MODALITIES as readonly string[]).includes(m))
      throw new ImagingError('INVALID_ARGUMENT', `unknown modality "${m}"; known: ${MODALITIES.join(', ')}`);
  return [...new Set(modalities as Modality[])];
}

/** The labelled anatomy of a subject on its voxel grid, shared by every modality. */
interface PhantomGrid {
  profile: SiteProfile;
  anatomy: 'head' | 'pelvis';
  dims: [number, number, number];
  spacing: [number, number, number];
  affine: Float64Array;
  /** Majority tissue of each voxel. */
  labels: Uint8Array;
  /** The tissue at each voxel's 2x2 in-plane sub-samples (4 per voxel), for partial volume. */
  sub: Uint8Array;
  mask: Float32Array;
}

function phantomGrid(opts: PhantomOptions): PhantomGrid {
  const profile = profileOf(opts.profile);
  if (!Number.isInteger(opts.size) || opts.size < 16 || opts.size > 1024)
    throw new ImagingError('INVALID_ARGUMENT', `size must be an integer in [16, 1024], got ${opts.size}`);
  const nz = opts.slices ?? Math.max(8, Math.round(opts.size / 4));
  if (!Number.isInteger(nz) || nz < 1)
    throw new ImagingError('INVALID_ARGUMENT', `slices must be a positive integer, got ${nz}`);
  const anatomy = opts.anatomy ?? (subSeed(opts.seed, 'anatomy') % 4 === 0 ? 'pelvis' : 'head');
  const rnd = mulberry32(subSeed(opts.seed, 'anatomy-shape'));
  const { label, fov } = anatomy === 'head' ? headLabeler(rnd) : pelvisLabeler(rnd);
  const nx = opts.size;
  const ny = opts.size;
  const dx = fov / nx;
  const dz = profile.sliceThickness;
  const z0 = anatomy === 'head' ? -((nz - 1) * dz) / 2 - 10 + (rnd() - 0.5) * 20 : -((nz - 1) * dz) / 2;
  const n = nx * ny * nz;
  const labels = new Uint8Array(n);
  const sub = new Uint8Array(4 * n);
  for (let z = 0; z < nz; z++) {
    const wz = z0 + z * dz;
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        const counts = new Uint8Array(9);
        for (let sy = 0; sy < 2; sy++) {
          for (let sx = 0; sx < 2; sx++) {
            const wx = (x + 0.25 + 0.5 * sx - nx / 2) * dx;
            const wy = (y + 0.25 + 0.5 * sy - ny / 2) * dx;
            const t = label(wx, wy, wz);
            counts[t]++;
            sub[4 * i + 2 * sy + sx] = t;
          }
        }
        let best = 0;
        for (let t = 1; t < 9; t++) if (counts[t] > counts[best]) best = t;
        labels[i] = best;
      }
    }
  }
  // Body mask: everything inside the outer skin, internal air included.
  const mask = new Float32Array(n);
  const bodyLabel =
    anatomy === 'head' ? headLabeler(mulberry32(subSeed(opts.seed, 'anatomy-shape'))).label : label;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        mask[i] =
          labels[i] !== Tissue.Air ||
          insideBody(bodyLabel, (x + 0.5 - nx / 2) * dx, (y + 0.5 - ny / 2) * dx, z0 + z * dz, dx)
            ? 1
            : 0;
      }
    }
  }
  return {
    profile,
    anatomy,
    dims: [nx, ny, nz],
    spacing: [dx, dx, dz],
    affine: diagonalAffine([dx, dx, dz], [-(nx / 2) * dx + dx / 2, -(ny / 2) * dx + dx / 2, z0]),
    labels,
    sub,
    mask,
  };
}

/** Per-voxel mean of a per-tissue value over the voxel's sub-samples (partial volume). */
function partialVolume(g: PhantomGrid, value: readonly number[]): Float32Array {
  const out = new Float32Array(g.labels.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let q = 0; q < 4; q++) s += value[g.sub[4 * i + q]];
    out[i] = s / 4;
  }
  return out;
}

/**
 * An MR image of the grid: per-tissue signal with partial volume, acquisition blur for coarser
 * resolution, the profile's bias field (the receive coil's, the same for every sequence of the
 * session) and Rician noise from its own stream, scaled so the brightest tissue is ~1000.
 */
function renderMr(
  g: PhantomGrid,
  seed: number,
  signal: readonly number[],
  noiseStream: string,
): Float32Array {
  const { profile } = g;
  const [nx, ny, nz] = g.dims;
  let maxSignal = 0;
  for (const s of signal) maxSignal = Math.max(maxSignal, s);
  const mrSignal = partialVolume(g, signal);
  const sigmaMr = profile.resolution < 1 ? (1 / profile.resolution - 1) * 1.2 : 0;
  const mrBlurred = sigmaMr > 0 ? gaussianBlur3d(mrSignal, g.dims, [sigmaMr, sigmaMr, 0]) : mrSignal;
  const brnd = mulberry32(subSeed(seed, 'bias'));
  const bias = Array.from({ length: 3 }, () => ({
    fx: 0.5 + brnd() * 1.5,
    fy: 0.5 + brnd() * 1.5,
    ph: brnd() * Math.PI * 2,
    a: brnd(),
  }));
  const anorm = bias.reduce((a, b) => a + b.a, 0) || 1;
  const noise = gaussian(mulberry32(subSeed(seed, noiseStream)));
  const sigma = profile.noise * maxSignal;
  const gain = 1000 / maxSignal;
  const mr = new Float32Array(mrSignal.length);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        let b = 0;
        for (const c of bias)
          b += c.a * Math.sin((c.fx * Math.PI * x) / nx + (c.fy * Math.PI * y) / ny + c.ph + z * 0.02);
        const field = 1 + (profile.bias / 2) * (b / anorm);
        const re = mrBlurred[i] * field + sigma * noise();
        const im = sigma * noise();
        mr[i] = Math.sqrt(re * re + im * im) * gain;
      }
    }
  }
  return mr;
}

/** Per-tissue signal of an MR sequence at a field strength. */
function sequenceSignal(seq: MrSequence, field: 1.5 | 3): number[] {
  const signal: number[] = [];
  for (let t = 0; t <= 8; t++)
    signal[t] =
      seq.kind === 'spin-echo'
        ? spinEcho(TISSUES[t as Tissue], field, seq.tr, seq.te)
        : inversionRecovery(TISSUES[t as Tissue], field, seq.tr, seq.te, seq.ti ?? 0);
  return signal;
}

/** CT: per-tissue HU with partial volume and texture, the scanner's blur and quantum noise. */
function renderCt(g: PhantomGrid, seed: number): Float32Array {
  const n = g.labels.length;
  const tex = gaussian(mulberry32(subSeed(seed, 'texture')));
  const ctHu = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let h = 0;
    for (let q = 0; q < 4; q++) h += TISSUES[g.sub[4 * i + q] as Tissue].hu;
    ctHu[i] = h / 4 + TISSUES[g.labels[i] as Tissue].huTexture * tex();
  }
  const ctBlur = gaussianBlur3d(ctHu, g.dims, [0.6, 0.6, 0.3]);
  const cnoise = gaussian(mulberry32(subSeed(seed, 'ct-noise')));
  const ct = new Float32Array(n);
  for (let i = 0; i < n; i++)
    ct[i] = Math.max(-1024, Math.min(3071, Math.round(ctBlur[i] + g.profile.ctNoise * cnoise())));
  return ct;
}

/** The subject's body weight (60-90 kg, to 0.1 kg) and injected dose (250-400 MBq, to 0.1 MBq). */
function petDose(seed: number): SubjectDose {
  const rnd = mulberry32(subSeed(seed, 'pet-patient'));
  const weightKg = Math.round((60 + 30 * rnd()) * 10) / 10;
  const injectedDoseBq = Math.round((250 + 150 * rnd()) * 10) * 1e5;
  return { weightKg, injectedDoseBq };
}

/** A Poisson draw: multiplication of uniforms for small means, the normal approximation above. */
function poisson(lambda: number, uniform: () => number, normal: () => number): number {
  if (!(lambda > 0)) return 0;
  if (lambda >= 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * normal()));
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = uniform();
  while (p > limit) {
    k++;
    p *= uniform();
  }
  return k;
}

/**
 * FDG PET in Bq/mL: activity = SUV * dose / weight per tissue with partial volume, counting noise on
 * the voxel's expected counts, then the scanner's resolution (FWHM PET_FWHM_MM), which also
 * correlates the noise as a reconstruction does.
 */
function renderPet(g: PhantomGrid, seed: number, dose: SubjectDose): Float32Array {
  const perSuv = dose.injectedDoseBq / (dose.weightKg * 1000);
  const activity: number[] = [];
  for (let t = 0; t <= 8; t++) activity[t] = PET_SUV[t as Tissue] * perSuv;
  if (g.anatomy === 'pelvis') activity[Tissue.Csf] = URINE_SUV * perSuv;
  const mean = partialVolume(g, activity);
  const voxelMl = (g.spacing[0] * g.spacing[1] * g.spacing[2]) / 1000;
  const countsPerActivity = voxelMl * PET_COUNTS_PER_BQ;
  const uniform = mulberry32(subSeed(seed, 'pet-noise'));
  const normal = gaussian(mulberry32(subSeed(seed, 'pet-noise-normal')));
  const noisy = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++)
    noisy[i] = poisson(mean[i] * countsPerActivity, uniform, normal) / countsPerActivity;
  const sigmaMm = PET_FWHM_MM / (2 * Math.sqrt(2 * Math.LN2));
  return gaussianBlur3d(noisy, g.dims, [
    sigmaMm / g.spacing[0],
    sigmaMm / g.spacing[1],
    sigmaMm / g.spacing[2],
  ]);
}

/**
 * One phantom subject imaged with several modalities, all on one grid from the labelled anatomy
 * that generatePhantomPair draws for the same options:
 * - `mr`: the profile's spin echo, exactly generatePhantomPair's MRI;
 * - `t1`, `t2`: T1- and T2-weighted spin echo, `flair`: inversion recovery with CSF nulled (timing
 *   from mrSequence), each with the profile's bias field, Rician noise and resolution;
 * - `pet`: FDG activity in Bq/mL from per-tissue SUV (PET_SUV), the patient's weight and injected
 *   dose (drawn from the seed and returned as `pet`), at PET resolution with counting noise;
 * - `ct`: generatePhantomPair's CT, in HU.
 * Every modality draws its noise from its own stream, so a modality's image does not depend on
 * which others are requested.
 */
export function generatePhantomSubject(opts: PhantomSubjectOptions): PhantomSubject {
  const modalities = checkModalities(opts.modalities);
  const g = phantomGrid(opts);
  const volume = (data: Float32Array): Volume => ({
    data,
    dims: [...g.dims],
    spacing: [...g.spacing],
    affine: Float64Array.from(g.affine),
  });
  const volumes: Partial<Record<Modality, Volume>> = {};
  let pet: SubjectDose | undefined;
  for (const m of modalities) {
    if (m === 'ct') volumes.ct = volume(renderCt(g, opts.seed));
    else if (m === 'pet') {
      pet = petDose(opts.seed);
      volumes.pet = volume(renderPet(g, opts.seed, pet));
    } else {
      const signal = sequenceSignal(mrSequence(opts.profile, m), g.profile.fieldStrength);
      volumes[m] = volume(renderMr(g, opts.seed, signal, m === 'mr' ? 'rician' : `rician-${m}`));
    }
  }
  return { volumes, mask: volume(g.mask), labels: g.labels, ...(pet ? { pet } : {}) };
}

/**
 * A random paired MRI / CT / body-mask phantom. The anatomy is drawn from `seed`; the MRI follows the
 * spin-echo signal equation of the profile's scanner with a smooth bias field and Rician noise; the
 * CT takes per-tissue HU with texture, partial-volume blur and noise.
 */
export function generatePhantomPair(opts: PhantomOptions): {
  mr: Volume;
  ct: Volume;
  mask: Volume;
  labels: Uint8Array;
} {
  const s = generatePhantomSubject({ ...opts, modalities: ['mr', 'ct'] });
  return { mr: s.volumes.mr as Volume, ct: s.volumes.ct as Volume, mask: s.mask, labels: s.labels };
}

/** Internal air (sinus, rectum) lies inside the body: probe outwards in 4 directions for tissue. */
function insideBody(label: Labeler, x: number, y: number, z: number, step: number): boolean {
  let hits = 0;
  for (const [ux, uy] of [
    [1, 0],
    [-1, 0],
    [0, 1],
    [0, -1],
  ]) {
    for (let d = 1; d < 40; d++) {
      if (label(x + ux * d * step, y + uy * d * step, z) !== Tissue.Air) {
        hits++;
        break;
      }
    }
  }
  return hits === 4;
}

/** What a phantom modality's DICOM series says it is. */
export const PHANTOM_DICOM_SERIES: Record<
  Modality,
  { modality: 'MR' | 'CT' | 'PT'; seriesDescription: string }
> = {
  mr: { modality: 'MR', seriesDescription: 'MR SE' },
  t1: { modality: 'MR', seriesDescription: 'T1w SE' },
  t2: { modality: 'MR', seriesDescription: 'T2w SE' },
  flair: { modality: 'MR', seriesDescription: 'FLAIR IR' },
  pet: { modality: 'PT', seriesDescription: 'PET FDG' },
  ct: { modality: 'CT', seriesDescription: 'CT' },
};

/**
 * Writes `subjects` phantom subjects in the SynthRAD2023 layout: `<out>/<id>/<modality>.nii.gz` for
 * each of `modalities` (default mr and ct; CT as int16 HU, the others float32) and `mask.nii.gz`;
 * with `pet`, also the BIDS-style sidecar `pet.json` (body weight, injected activity, units).
 * With `format: 'dicom'` each modality is a DICOM series in `<out>/<id>/<modality>/` instead
 * (PHANTOM_DICOM_SERIES; PET with its weight and dose in the header), the mask staying NIfTI.
 * Subject ids are `<profile>-<seed>-<k>` (zero-padded).
 */
export async function writePhantomDataset(opts: {
  out: string;
  subjects: number;
  seed: number;
  profile: string;
  size: number;
  slices?: number;
  anatomy?: 'head' | 'pelvis';
  modalities?: Modality[];
  format?: 'nifti' | 'dicom';
  onProgress?: (done: number, total: number) => void;
}): Promise<string[]> {
  if (!Number.isInteger(opts.subjects) || opts.subjects < 1)
    throw new ImagingError('INVALID_ARGUMENT', `subjects must be a positive integer, got ${opts.subjects}`);
  const modalities = checkModalities(opts.modalities ?? ['mr', 'ct']);
  await mkdir(opts.out, { recursive: true });
  const ids: string[] = [];
  for (let k = 0; k < opts.subjects; k++) {
    const id = `${opts.profile}-${opts.seed}-${String(k).padStart(3, '0')}`;
    const dir = join(opts.out, id);
    await mkdir(dir, { recursive: true });
    const s = generatePhantomSubject({
      seed: subSeed(opts.seed, `${opts.profile}/${k}`),
      profile: opts.profile,
      size: opts.size,
      slices: opts.slices,
      anatomy: opts.anatomy,
      modalities,
    });
    for (const m of modalities) {
      const vol = s.volumes[m] as Volume;
      if (opts.format === 'dicom')
        await writeDicomSeries(vol, join(dir, m), {
          ...PHANTOM_DICOM_SERIES[m],
          patientId: id,
          // Activity as imaged, decay corrected to the injection.
          ...(m === 'pet' && s.pet
            ? { pet: { ...s.pet, decayCorrection: 'ADMIN' as const, units: 'BQML' } }
            : {}),
        });
      else await writeNifti(join(dir, `${m}.nii.gz`), vol, { datatype: m === 'ct' ? 'int16' : 'float32' });
    }
    await writeNifti(join(dir, 'mask.nii.gz'), s.mask, { datatype: 'int16' });
    if (s.pet && opts.format !== 'dicom') {
      const sidecar = {
        BodyWeight: s.pet.weightKg,
        InjectedRadioactivity: s.pet.injectedDoseBq / 1e6,
        InjectedRadioactivityUnits: 'MBq',
        Units: 'Bq/mL',
      };
      await writeFile(join(dir, 'pet.json'), `${JSON.stringify(sidecar, null, 2)}\n`);
    }
    ids.push(id);
    opts.onProgress?.(k + 1, opts.subjects);
  }
  return ids;
}
