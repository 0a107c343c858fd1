import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInitialModel, decodeSafetensors, flattenCanonical, selectBackend } from '@fedsynth/diffusion';
import { writePhantomDataset } from '@fedsynth/imaging';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from './agent-process';

const agent = (args: string[]) => runAgent(args, 120_000);

let stateDir: string;
let dataDir: string;
let modelPath: string;

beforeAll(async () => {
  await selectBackend('cpu');
  const root = await mkdtemp(join(tmpdir(), 'fedsynth-agent-local-'));
  stateDir = join(root, 'state');
  dataDir = join(root, 'data');
  await mkdir(stateDir, { recursive: true });
  // A T1 -> FLAIR site: no MRI/CT pair anywhere.
  await writePhantomDataset({
    out: dataDir,
    subjects: 3,
    seed: 4,
    profile: 'site-b',
    size: 16,
    slices: 6,
    anatomy: 'head',
    modalities: ['t1', 'flair'],
  });
  modelPath = join(root, 'global.safetensors');
  await writeFile(
    modelPath,
    await createInitialModel({
      size: 16,
      channels: [8, 16],
      numResBlocks: 1,
      prediction: 'sample',
      schedule: 'cosine',
      seed: 3,
      task: 't1-to-flair',
      conditionChannels: 1,
    }),
  );
}, 60_000);

describe('evaluate and finetune at the site', () => {
  it("evaluate scores the model on the site's validation split, on the FLAIR's normalized scale", async () => {
    const r = await agent([
      'evaluate',
      '--state-dir',
      stateDir,
      '--data-dir',
      dataDir,
      '--model',
      modelPath,
      '--backend',
      'cpu',
      '--steps',
      '2',
    ]);
    expect(r.code, r.err).toBe(0);
    const e = JSON.parse(r.out);
    expect(e.task).toBe('t1-to-flair');
    expect(e.maeUnit).toBe('normalized 0..1');
    expect(e.slices).toBeGreaterThan(0);
    expect(e.mae).toBeGreaterThan(0);
    expect(e.mae).toBeLessThan(1);
  }, 120_000);

  it('finetune writes a model that moved, scores it before and after, and sends nothing', async () => {
    const out = join(stateDir, 'mine.safetensors');
    const r = await agent([
      'finetune',
      '--state-dir',
      stateDir,
      '--data-dir',
      dataDir,
      '--model',
      modelPath,
      '--backend',
      'cpu',
      '--steps',
      '3',
      '--batch',
      '2',
      '--lr',
      '1e-3',
      '--eval-steps',
      '2',
      '--out',
      out,
    ]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    const f = JSON.parse(lines[lines.length - 1]);
    expect(f.out).toBe(out);
    expect(f.steps).toBe(3);
    expect(f.before.slices).toBe(f.after.slices);
    const a = decodeSafetensors(new Uint8Array(readFileSync(modelPath)), 'global');
    const b = decodeSafetensors(new Uint8Array(readFileSync(out)), 'fine-tuned');
    expect(b.metadata.task).toBe('t1-to-flair');
    expect(b.metadata.finetunedFrom).toBe(modelPath);
    const x = flattenCanonical(a.arrays);
    const y = flattenCanonical(b.arrays);
    let moved = 0;
    for (let i = 0; i < x.length; i++) moved = Math.max(moved, Math.abs(x[i] - y[i]));
    // Three Adam steps at 1e-3 move some weight by about that much, and none by much more.
    expect(moved).toBeGreaterThan(5e-4);
    expect(moved).toBeLessThan(3.5e-3);
    // No connection was opened: the state folder has no audit log, and only the model was written.
    expect(existsSync(join(stateDir, 'audit.jsonl'))).toBe(false);
    expect(readdirSync(stateDir)).toEqual(['mine.safetensors']);
  }, 120_000);

  it("refuses a task the model was not trained for, and a site without the task's modalities", async () => {
    const r = await agent([
      'evaluate',
      '--state-dir',
      stateDir,
      '--data-dir',
      dataDir,
      '--model',
      modelPath,
      '--task',
      't1-to-t2',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('--task t1-to-t2 disagrees with the model, which was trained for t1-to-flair');
    const ct = join(stateDir, '..', 'ct.safetensors');
    await writeFile(
      ct,
      await createInitialModel({
        size: 16,
        channels: [8, 16],
        numResBlocks: 1,
        prediction: 'sample',
        schedule: 'cosine',
        task: 't1+t2-to-ct',
        conditionChannels: 2,
      }),
    );
    const m = await agent([
      'evaluate',
      '--state-dir',
      stateDir,
      '--data-dir',
      dataDir,
      '--model',
      ct,
      '--backend',
      'cpu',
    ]);
    expect(m.code).not.toBe(0);
    expect(m.err).toMatch(/no subject has every modality of the task t1\+t2-to-ct \(.*no t2, ct/);
  }, 120_000);
});
