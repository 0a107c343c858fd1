import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writeNifti, writePhantomDataset } from '@fedsynth/imaging';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { selectBackend } from '../backend';
import { createInitialModel } from '../checkpoint';
import { decodeSafetensors } from '../weights';
import { main as synthesizeMain } from './synthesize';
import { main as trainMain } from './train';

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

function quiet() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
  return { out, err };
}

describe('fedsynth-train and fedsynth-synthesize', () => {
  it('train, resume where it stopped, then synthesize a NIfTI with the input geometry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-train-'));
    const data = join(dir, 'data');
    await writePhantomDataset({ out: data, subjects: 3, seed: 2, profile: 'site-a', size: 32, slices: 6 });
    const model = join(dir, 'model.safetensors');
    const io = quiet();
    const common = [
      '--data',
      data,
      '--out',
      model,
      '--size',
      '16',
      '--batch',
      '2',
      '--channels',
      '8,16',
      '--res-blocks',
      '1',
      '--val-every',
      '2',
      '--val-slices',
      '2',
      '--ddim-steps',
      '2',
      '--checkpoint-every',
      '1',
      '--backend',
      'wasm',
    ];
    await trainMain([...common, '--steps', '2']);
    expect(process.exitCode, io.err.join('')).toBe(0);
    await trainMain([...common, '--steps', '4']);
    expect(process.exitCode, io.err.join('')).toBe(0);
    expect(io.err.join('')).toMatch(/resuming .*model\.safetensors at step 2/);
    // The memory planner's decision is printed before training.
    expect(io.err.join('')).toMatch(
      /memory: \d+ of \d+ slices per pass.*about \d+ MiB of \d+ MiB per thread/,
    );
    const history = (await readFile(`${model}.history.jsonl`, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(history.map((h) => h.step)).toEqual([2, 4]);
    for (const h of history) expect(h.maeHU).toBeGreaterThan(0);
    const input = join(data, 'site-a-2-000', 'mr.nii.gz');
    const out = join(dir, 'sct.nii.gz');
    await synthesizeMain([
      '--model',
      model,
      '--input',
      input,
      '--out',
      out,
      '--steps',
      '2',
      '--backend',
      'wasm',
    ]);
    expect(process.exitCode, io.err.join('')).toBe(0);
    // The 32 px phantom goes through the 16 px model resampled; the time is printed.
    const result = JSON.parse(io.out[io.out.length - 1]);
    expect(result).toMatchObject({ slices: 6, steps: 2, resampled: true });
    expect(result.batch).toBeGreaterThanOrEqual(1);
    expect(result.seconds).toBeGreaterThanOrEqual(0);
    expect(result.secondsPerSlice).toBeGreaterThanOrEqual(0);
    expect(io.err.join('')).toMatch(
      /6 slices of 32x32, resampled to the model's 16 px, up to \d+ per pass, 2 DDIM steps/,
    );
    expect(io.err.join('')).toMatch(
      /synthesized 6 slices in \d+\.\d s \(\d+ threads?, \d+ slices? per pass\)/,
    );
    const [mr, sct, mask] = await Promise.all([
      readNifti(input),
      readNifti(out),
      readNifti(join(data, 'site-a-2-000', 'mask.nii.gz')),
    ]);
    expect(sct.dims).toEqual(mr.dims);
    for (let i = 0; i < 16; i++) expect(sct.affine[i]).toBeCloseTo(mr.affine[i], 4);
    let outside = 0;
    for (let i = 0; i < sct.data.length; i++) {
      expect(sct.data[i]).toBeGreaterThanOrEqual(-1024);
      expect(sct.data[i]).toBeLessThanOrEqual(3000);
      if (mask.data[i] === 0 && sct.data[i] === -1024) outside++;
    }
    expect(outside).toBeGreaterThan(0);
  }, 120_000);

  it('--init starts from a saved model, takes its settings, and refuses flags that disagree', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-train-init-'));
    const data = join(dir, 'data');
    await writePhantomDataset({ out: data, subjects: 3, seed: 4, profile: 'site-b', size: 32, slices: 6 });
    await selectBackend('wasm');
    // Settings other than the flags' defaults, so that the run can only have taken them from the model.
    const initPath = join(dir, 'global.safetensors');
    await writeFile(
      initPath,
      await createInitialModel({
        size: 16,
        channels: [8, 16],
        numResBlocks: 1,
        prediction: 'epsilon',
        schedule: 'linear',
        seed: 11,
      }),
    );
    const model = join(dir, 'model.safetensors');
    const io = quiet();
    const lr = 1e-3;
    const common = [
      '--data',
      data,
      '--out',
      model,
      '--init',
      initPath,
      '--batch',
      '2',
      '--lr',
      String(lr),
      '--ema',
      '0',
      '--val-every',
      '0',
      '--val-slices',
      '1',
      '--ddim-steps',
      '1',
      '--backend',
      'wasm',
    ];
    await trainMain([...common, '--steps', '1']);
    expect(process.exitCode, io.err.join('')).toBe(0);
    expect(io.err.join('')).toMatch(
      /starting from .*global\.safetensors: channels 8,16, 1 residual block per level, size 16/,
    );
    expect(io.err.join('')).toMatch(/prediction epsilon, schedule linear/);
    const before = decodeSafetensors(new Uint8Array(await readFile(initPath)));
    const after = decodeSafetensors(new Uint8Array(await readFile(model)));
    expect(after.metadata).toMatchObject({
      size: '16',
      prediction: 'epsilon',
      schedule: 'linear',
      step: '1',
      'fedsynth.unet': before.metadata['fedsynth.unet'],
    });
    // One AdamW step moves a weight by at most about lr (its first step is lr * g / |g|, plus a
    // decay of lr * 1e-4 of it): the written weights are the init's, barely moved.
    expect(after.arrays.map((a) => a.name)).toEqual(before.arrays.map((a) => a.name));
    let maxDiff = 0;
    let moved = 0;
    after.arrays.forEach((a, k) => {
      const b = before.arrays[k];
      expect(a.shape).toEqual(b.shape);
      for (let i = 0; i < a.data.length; i++) {
        const d = Math.abs(a.data[i] - b.data[i]);
        maxDiff = Math.max(maxDiff, d);
        if (d > 0.5 * lr) moved++;
      }
    });
    expect(maxDiff).toBeLessThan(1.01 * lr);
    expect(maxDiff).toBeGreaterThan(0.5 * lr);
    expect(moved).toBeGreaterThan(0);

    // The checkpoint just written would be resumed: --init over it needs --fresh.
    io.err.length = 0;
    await trainMain([...common, '--steps', '1']);
    expect(process.exitCode).toBe(2);
    expect(io.err.join('')).toMatch(
      /--init .*global\.safetensors: .*model\.safetensors\.state holds a run to resume; pass --fresh/,
    );
    // Flags given explicitly must agree with the model's metadata and architecture.
    for (const [flag, value, theirs] of [
      ['--size', '32', '16'],
      ['--prediction', 'v', 'epsilon'],
      ['--channels', '8,32', '8,16'],
    ]) {
      io.err.length = 0;
      await trainMain([...common, '--fresh', '--steps', '1', flag, value]);
      expect(process.exitCode, io.err.join('')).toBe(2);
      expect(io.err.join('')).toContain(
        `${flag} ${value} disagrees with --init ${initPath}, which was made with ${flag.slice(2)} ${theirs}`,
      );
    }
    // Repeating the model's own values is fine.
    io.err.length = 0;
    await trainMain([...common, '--fresh', '--steps', '1', '--size', '16', '--schedule', 'linear']);
    expect(process.exitCode, io.err.join('')).toBe(0);
  }, 120_000);

  it('names bad flags and missing inputs', async () => {
    const io = quiet();
    await trainMain(['--data', '/nonexistent', '--out', '/tmp/x.safetensors', '--prediction', 'noise']);
    expect(process.exitCode).toBe(2);
    expect(io.err.join('')).toMatch(/--prediction: "noise" must be one of epsilon, v, sample/);
    await synthesizeMain([
      '--model',
      '/nonexistent.safetensors',
      '--input',
      'a',
      '--out',
      'b',
      '--backend',
      'wasm',
    ]);
    expect(process.exitCode).toBe(1);
    expect(io.err.join('')).toMatch(/nonexistent\.safetensors: cannot be read/);
  });

  it('synthesizes a CT from T1 and T2 with a t1+t2-to-ct model, and names a missing, unused or misaligned input', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-synth-task-'));
    const data = join(dir, 'data');
    const [id] = await writePhantomDataset({
      out: data,
      subjects: 1,
      seed: 5,
      profile: 'site-b',
      size: 16,
      slices: 3,
      modalities: ['t1', 't2', 'ct'],
    });
    const model = join(dir, 'model.safetensors');
    await writeFile(
      model,
      await createInitialModel({
        size: 16,
        channels: [8, 16],
        numResBlocks: 1,
        prediction: 'sample',
        schedule: 'cosine',
        seed: 1,
        task: 't1+t2-to-ct',
        conditionChannels: 2,
      }),
    );
    const t1 = join(data, id, 't1.nii.gz');
    const t2 = join(data, id, 't2.nii.gz');
    const out = join(dir, 'sct.nii.gz');
    const io = quiet();
    const run = (...inputs: string[]) =>
      synthesizeMain([
        '--model',
        model,
        ...inputs.flatMap((x) => ['--input', x]),
        '--out',
        out,
        '--steps',
        '2',
        '--backend',
        'wasm',
        '--threads',
        '1',
      ]);
    await run(`t1=${t1}`, `t2=${t2}`);
    expect(process.exitCode, io.err.join('')).toBe(0);
    const result = JSON.parse(io.out[io.out.length - 1]);
    expect(result).toMatchObject({ task: 't1+t2-to-ct', slices: 3, steps: 2, resampled: false });
    expect(result.seconds).toBeGreaterThanOrEqual(0);
    expect(io.err.join('')).toMatch(/t1\+t2 -> ct: 3 slices of 16x16, at the model's native 16 px/);
    const [ref, sct] = await Promise.all([readNifti(t1), readNifti(out)]);
    expect(sct.dims).toEqual(ref.dims);
    for (let i = 0; i < 16; i++) expect(sct.affine[i]).toBeCloseTo(ref.affine[i], 4);
    for (const x of sct.data) {
      expect(Number.isInteger(x)).toBe(true);
      expect(x).toBeGreaterThanOrEqual(-1024);
      expect(x).toBeLessThanOrEqual(3000);
    }
    expect(sct.data).toContain(-1024); // air outside the body

    // Usage errors name what is wrong before any synthesis.
    for (const [inputs, message] of [
      [[`t1=${t1}`], "the model's task t1+t2-to-ct needs --input t2=FILE"],
      [
        [t1],
        `--input ${t1}: the model's task t1+t2-to-ct has 2 sources; name each one's file: --input t1=FILE --input t2=FILE`,
      ],
      [
        [`t1=${t1}`, `t2=${t2}`, `flair=${t2}`],
        "the model's task t1+t2-to-ct does not use flair (its sources: t1, t2)",
      ],
      [[`t1=${t1}`, `ct=${t2}`], "ct is what the model's task t1+t2-to-ct synthesizes"],
    ] as const) {
      io.err.length = 0;
      await run(...inputs);
      expect(process.exitCode, io.err.join('')).toBe(2);
      expect(io.err.join('')).toContain(message);
    }
    // Inputs on different grids: both files named.
    const vol = await readNifti(t2);
    const short = join(dir, 't2-short.nii.gz');
    await writeNifti(short, { ...vol, dims: [16, 16, 2], data: vol.data.subarray(0, 16 * 16 * 2) });
    const moved = join(dir, 't2-moved.nii.gz');
    const affine = Float64Array.from(vol.affine);
    affine[3] += 5;
    await writeNifti(moved, { ...vol, affine });
    for (const [file, message] of [
      [short, `--input t2=${short} is 16x16x2 but --input t1=${t1} is 16x16x3`],
      [moved, `--input t2=${moved} and --input t1=${t1} are on different grids`],
    ]) {
      io.err.length = 0;
      await run(`t1=${t1}`, `t2=${file}`);
      expect(process.exitCode, io.err.join('')).toBe(1);
      expect(io.err.join('')).toContain(message);
    }
  }, 120_000);

  it('synthesizes a T1 (normalized 0..1) from a PET given as a plain --input, its dose from pet.json or --pet-dose', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-synth-pet-'));
    const data = join(dir, 'data');
    const [id] = await writePhantomDataset({
      out: data,
      subjects: 1,
      seed: 8,
      profile: 'site-a',
      size: 16,
      slices: 3,
      anatomy: 'head',
      modalities: ['pet', 't1'],
    });
    const model = join(dir, 'model.safetensors');
    await writeFile(
      model,
      await createInitialModel({
        size: 16,
        channels: [8, 16],
        numResBlocks: 1,
        prediction: 'sample',
        schedule: 'cosine',
        seed: 2,
        task: 'pet-to-t1',
        conditionChannels: 1,
      }),
    );
    const pet = join(data, id, 'pet.nii.gz');
    const out = join(dir, 'st1.nii.gz');
    const io = quiet();
    const run = (...extra: string[]) =>
      synthesizeMain([
        '--model',
        model,
        '--input',
        pet,
        '--out',
        out,
        '--steps',
        '1',
        '--backend',
        'wasm',
        ...extra,
      ]);
    await run();
    expect(process.exitCode, io.err.join('')).toBe(0);
    expect(JSON.parse(io.out[io.out.length - 1]).task).toBe('pet-to-t1');
    const st1 = await readNifti(out);
    expect(st1.dims).toEqual([16, 16, 3]);
    for (const x of st1.data) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(1);
    }
    // A dose sidecar given explicitly; a missing one is named.
    await run('--pet-dose', join(data, id, 'pet.json'));
    expect(process.exitCode, io.err.join('')).toBe(0);
    io.err.length = 0;
    await run('--pet-dose', join(dir, 'none.json'));
    expect(process.exitCode).toBe(1);
    expect(io.err.join('')).toContain(`${join(dir, 'none.json')}: cannot be read`);
  }, 120_000);
});
