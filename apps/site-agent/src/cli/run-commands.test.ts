import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writeNifti, writePhantomDataset } from '@fedsynth/imaging';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from './agent-process';

const agent = (args: string[]) => runAgent(args, 30_000);

let stateDir: string;
let dataDir: string;
let badCt: string;

beforeAll(async () => {
  const root = await mkdtemp(join(tmpdir(), 'fedsynth-agent-cli-'));
  stateDir = join(root, 'state');
  dataDir = join(root, 'data');
  const ids = await writePhantomDataset({
    out: dataDir,
    subjects: 2,
    seed: 6,
    profile: 'site-a',
    size: 16,
    slices: 3,
  });
  badCt = `${ids[1]}/ct.nii.gz`;
  const ct = await readNifti(join(dataDir, badCt));
  ct.data[20] = Infinity;
  await writeNifti(join(dataDir, badCt), ct, { datatype: 'float32' });
  const init = await agent([
    'init',
    '--state-dir',
    stateDir,
    '--site-name',
    's',
    '--data-dir',
    dataDir,
    '--coordinator-url',
    'http://127.0.0.1:9',
    '--force',
  ]);
  expect(init.err).toBe('');
  expect(init.code).toBe(0);
});

describe('fedsynth-agent and the site data', () => {
  it('run refuses to start on a volume with an infinite voxel, naming the file and the problem', async () => {
    // Act
    const r = await agent(['run', '--state-dir', stateDir]);
    // Assert
    expect(r.code).toBe(1);
    expect(r.err).toContain(`fedsynth-agent run: refusing to start: the data check failed for ${dataDir}`);
    expect(r.err).toContain(`\n  ${badCt}: 1 non-finite voxel (1 +Infinity)\n`);
    expect(r.err).toContain(`run 'fedsynth-data check ${dataDir}' for the full report`);
    expect(r.err).not.toMatch(/agent starting|training backend/);
  });

  it('run refuses to start on a folder without subjects', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'fedsynth-agent-empty-'));
    const r = await agent(['run', '--state-dir', stateDir, '--data-dir', empty]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `refusing to start: the data check failed for ${empty}: no subjects found (expected <subject>/mr.nii.gz and ct.nii.gz)`,
    );
  });

  it('run gets past the data check on clean data (and stops at the missing enrollment)', async () => {
    const clean = await mkdtemp(join(tmpdir(), 'fedsynth-agent-clean-'));
    await writePhantomDataset({ out: clean, subjects: 2, seed: 6, profile: 'site-a', size: 16, slices: 3 });
    const r = await agent(['run', '--state-dir', stateDir, '--data-dir', clean]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/"msg":"data checked","subjects":2/);
    expect(r.err).toMatch(/this site is not enrolled/);
  });

  it('run writes its log at --log-level, $FEDSYNTH_LOG_LEVEL when the flag is absent, and refuses a bad level', async () => {
    const clean = await mkdtemp(join(tmpdir(), 'fedsynth-agent-levels-'));
    await writePhantomDataset({ out: clean, subjects: 2, seed: 6, profile: 'site-a', size: 16, slices: 3 });
    const run = (flags: string[], env: NodeJS.ProcessEnv = {}) =>
      runAgent(['run', '--state-dir', stateDir, '--data-dir', clean, ...flags], 30_000, env);
    const quiet = await run(['--log-level', 'warn', '--log-format', 'json']);
    expect(quiet.code).toBe(1);
    expect(quiet.err).not.toMatch(/"level":"info"/);
    expect(quiet.err).toMatch(/this site is not enrolled/);
    const byEnv = await run(['--log-format', 'json'], { FEDSYNTH_LOG_LEVEL: 'warn' });
    expect(byEnv.err).not.toMatch(/data checked/);
    const flagWins = await run(['--log-level', 'info'], { FEDSYNTH_AGENT_LOG_LEVEL: 'error' });
    expect(flagWins.err).toMatch(/"level":"info","time":"[^"]+","name":"agent","msg":"data checked"/);
    const debug = await run(['--log-level', 'debug', '--log-format', 'pretty']);
    expect(debug.err).toMatch(/^\d\d:\d\d:\d\d DEBUG settings {2}stateDir=/m);
    expect(debug.err).toMatch(/^\d\d:\d\d:\d\d data checked {2}subjects=2$/m);
    const bad = await run(['--log-level', 'loud']);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(
      'logLevel (from --log-level): "loud" must be one of trace, debug, info, warn, error, fatal, silent',
    );
  });

  it('doctor fails the data check naming the file and the problem', async () => {
    const r = await agent(['doctor', '--state-dir', stateDir]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`FAIL  data          ${dataDir}: 2 subjects, 1 problem(s)\n`);
    expect(r.out).toContain(`\n      ${badCt}: 1 non-finite voxel (1 +Infinity)\n`);
    expect(r.out).toContain(`full report: fedsynth-data check ${dataDir}\n`);
    // What this machine can train, from the memory planner: the wasm heap caps a thread at 3 GiB,
    // where a 512 px slice of the default U-Net does not fit.
    expect(r.out).toMatch(
      /ok {4}memory {8}\d+ MiB per training thread x \d+ threads?; default U-Net: 64 px: \d+ slices? per pass/,
    );
    expect(r.out).toMatch(/512 px: does not fit; largest size \d+ px/);
  });
});
