import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInitialModel, selectBackend } from '@fedsynth/diffusion';
import { readNifti, writePhantomDataset } from '@fedsynth/imaging';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from './agent-process';

const agent = (args: string[]) => runAgent(args, 120_000);

let root: string;
let subject: string;
let taskModel: string;
let mriCtModel: string;

beforeAll(async () => {
  await selectBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'fedsynth-agent-synth-'));
  const data = join(root, 'data');
  const [id] = await writePhantomDataset({
    out: data,
    subjects: 1,
    seed: 3,
    profile: 'site-c',
    size: 16,
    slices: 3,
    modalities: ['mr', 't1', 't2', 'ct'],
  });
  subject = join(data, id);
  const tiny = {
    size: 16,
    channels: [8, 16],
    numResBlocks: 1,
    prediction: 'sample' as const,
    schedule: 'cosine' as const,
    seed: 5,
  };
  taskModel = join(root, 't1t2-ct.safetensors');
  await writeFile(
    taskModel,
    await createInitialModel({ ...tiny, task: 't1+t2-to-ct', conditionChannels: 2 }),
  );
  // A model from before tasks were recorded: MRI -> CT.
  mriCtModel = join(root, 'mr-ct.safetensors');
  await writeFile(mriCtModel, await createInitialModel(tiny));
}, 60_000);

const common = (model: string, out: string) => [
  'synthesize',
  '--state-dir',
  join(root, 'state'),
  '--model',
  model,
  '--out',
  out,
  '--steps',
  '2',
  '--backend',
  'wasm',
];

describe('fedsynth-agent synthesize', () => {
  it("writes a t1+t2-to-ct model's CT (HU, the input's grid) from T1 and T2 given as modality=file", async () => {
    const out = join(root, 'sct-t1t2.nii.gz');
    const t1 = join(subject, 't1.nii.gz');
    // --input repeated, one modality each.
    const r = await agent([
      ...common(taskModel, out),
      '--input',
      `t1=${t1}`,
      '--input',
      `t2=${join(subject, 't2.nii.gz')}`,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      out,
      model: taskModel,
      task: 't1+t2-to-ct',
      slices: 3,
      steps: 2,
    });
    const [ref, sct] = await Promise.all([readNifti(t1), readNifti(out)]);
    expect(sct.dims).toEqual(ref.dims);
    for (let i = 0; i < 16; i++) expect(sct.affine[i]).toBeCloseTo(ref.affine[i], 4);
    for (const x of sct.data) {
      expect(x).toBeGreaterThanOrEqual(-1024);
      expect(x).toBeLessThanOrEqual(3000);
    }
  }, 120_000);

  it('names the source a task model still needs, and keeps MRI -> CT models on a plain --input', async () => {
    const missing = await agent([
      ...common(taskModel, join(root, 'x.nii.gz')),
      '--input',
      `t1=${join(subject, 't1.nii.gz')}`,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("the model's task t1+t2-to-ct needs --input t2=FILE");

    const out = join(root, 'sct-mr.nii.gz');
    const mr = join(subject, 'mr.nii.gz');
    const r = await agent([...common(mriCtModel, out), '--input', mr]);
    expect(r.code, r.err).toBe(0);
    const line = JSON.parse(r.out);
    expect(line).toMatchObject({ out, model: mriCtModel, slices: 3, steps: 2 });
    expect(line.task).toBeUndefined();
    expect((await readNifti(out)).dims).toEqual((await readNifti(mr)).dims);
  }, 120_000);
});
