import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main as dataMain } from './cli/data';
import { checkTaskDataset } from './data-check';
import { writeNifti } from './nifti';
import { writePhantomDataset } from './phantom';
import { parseTask } from './task';
import { diagonalAffine } from './volume';

/** Runs `fedsynth-data` in this process; returns its exit code and what it printed. */
async function data(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stderr.write;
  const before = process.exitCode;
  try {
    await dataMain(args);
    return { code: Number(process.exitCode ?? 0), out };
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
    process.exitCode = before;
  }
}

describe('the data check for a task', () => {
  it('passes complete subjects and names a missing modality, a grid mismatch and a PET without dose', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsynth-taskcheck-'));
    const ids = await writePhantomDataset({
      out: dir,
      subjects: 3,
      seed: 2,
      profile: 'site-a',
      size: 16,
      slices: 4,
      anatomy: 'head',
      modalities: ['t1', 't2', 'pet', 'ct'],
    });
    const task = parseTask('t1+t2-to-ct');
    const clean = await checkTaskDataset(dir, task);
    expect(clean.problemCount).toBe(0);
    expect(clean.subjects.map((s) => s.id)).toEqual(ids);
    // Subject 0 loses its T2; subject 1's CT is on another grid; subject 2's PET loses its dose.
    await rm(join(dir, ids[0], 't2.nii.gz'));
    await writeNifti(join(dir, ids[1], 'ct.nii.gz'), {
      data: new Float32Array(16 * 16 * 3).fill(-1000),
      dims: [16, 16, 3],
      spacing: [1, 1, 1],
      affine: diagonalAffine([1, 1, 1]),
    });
    await writeFile(join(dir, ids[2], 'pet.json'), JSON.stringify({ BodyWeight: 70 }));
    const r = await checkTaskDataset(dir, task);
    const lines = r.subjects.flatMap((s) => s.problems);
    expect(lines).toContain(
      `${ids[0]}/t2: no t2 for the task t1+t2-to-ct (looked for t2.nii.gz, t2w.nii.gz (.nii, .png) and a DICOM series of t2)`,
    );
    expect(lines).toContain(`${ids[1]}/ct.nii.gz: shape 16x16x3 differs from ${ids[1]}/t1.nii.gz (16x16x4)`);
    expect(lines.some((l) => l.startsWith(`${ids[2]}/pet.nii.gz`))).toBe(false);
    const withPet = await checkTaskDataset(dir, parseTask('pet-to-t1'));
    const petLines = withPet.subjects.flatMap((s) => s.problems);
    expect(petLines.find((l) => l.startsWith(`${ids[2]}/pet.nii.gz: `))).toMatch(/InjectedRadioactivity/);
    // The command line says the same and exits 1.
    const cli = await data(['check', dir, '--task', 't1+t2-to-ct']);
    expect(cli.code).toBe(1);
    expect(cli.out).toContain(`problem: ${ids[0]}/t2: no t2 for the task t1+t2-to-ct`);
    expect(cli.out).toContain('2 problem(s) found');
    const bad = await data(['check', dir, '--task', 't1-to-xray']);
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('--task: unknown target modality "xray"');
  });
});
