import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writePhantomDataset } from '@fedsynth/imaging';
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
});
