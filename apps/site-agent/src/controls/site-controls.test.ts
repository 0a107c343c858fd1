import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AgentConfigSources, configPath, loadAgentConfig } from '../config/agent-config';
import { declineReason, readControls } from './site-controls';

/** A state directory whose agent.json holds `file`. */
function stateDir(file: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-controls-'));
  writeFileSync(configPath(dir), JSON.stringify({ siteName: 'h1', ...file }));
  return dir;
}

const NOON = new Date(2026, 0, 1, 12, 0);
const NIGHT = '20:00-06:00';
const decide = (sources: AgentConfigSources) =>
  declineReason(loadAgentConfig(sources), { hasData: true, now: NOON });

describe('site controls', () => {
  it('decline a round when opted out, from the file, the environment or a flag', () => {
    expect(decide({ stateDir: stateDir({ optOut: true }), env: {} })).toBe(
      'the site has opted out of training',
    );
    expect(decide({ stateDir: stateDir({}), env: { FEDSYNTH_AGENT_OPT_OUT: 'true' } })).toBe(
      'the site has opted out of training',
    );
    expect(decide({ stateDir: stateDir({}), env: {}, flags: { optOut: true } })).toBe(
      'the site has opted out of training',
    );
  });

  it('decline a round outside the training window, from the file, the environment or a flag', () => {
    const outside = `outside the site's training window (${NIGHT})`;
    expect(decide({ stateDir: stateDir({ trainingWindow: NIGHT }), env: {} })).toBe(outside);
    expect(decide({ stateDir: stateDir({}), env: { FEDSYNTH_AGENT_TRAINING_WINDOW: NIGHT } })).toBe(outside);
    expect(decide({ stateDir: stateDir({}), env: {}, flags: { trainingWindow: NIGHT } })).toBe(outside);
    expect(
      declineReason(
        { optOut: false, paused: false, trainingWindow: NIGHT },
        { hasData: true, now: new Date(2026, 0, 1, 23) },
      ),
    ).toBeNull();
  });

  it('a flag beats the environment, which beats the file', () => {
    const dir = stateDir({ optOut: true, trainingWindow: NIGHT });
    expect(decide({ stateDir: dir, env: { FEDSYNTH_AGENT_OPT_OUT: 'false' } })).toBe(
      `outside the site's training window (${NIGHT})`,
    );
    expect(
      decide({
        stateDir: dir,
        env: { FEDSYNTH_AGENT_OPT_OUT: 'false', FEDSYNTH_AGENT_TRAINING_WINDOW: 'always' },
      }),
    ).toBeNull();
    const envOptOut = stateDir({ optOut: false });
    expect(decide({ stateDir: envOptOut, env: { FEDSYNTH_AGENT_OPT_OUT: 'yes' } })).toMatch(/opted out/);
    expect(
      decide({ stateDir: envOptOut, env: { FEDSYNTH_AGENT_OPT_OUT: 'yes' }, flags: { optOut: false } }),
    ).toBeNull();
    expect(
      decide({
        stateDir: stateDir({}),
        env: { FEDSYNTH_AGENT_TRAINING_WINDOW: 'always' },
        flags: { trainingWindow: NIGHT },
      }),
    ).toMatch(/outside/);
  });

  it('re-read the file under the same environment and flags, and keep the start settings when it breaks', () => {
    const dir = stateDir({});
    const sources = { stateDir: dir, env: { FEDSYNTH_AGENT_TRAINING_WINDOW: NIGHT }, flags: {} };
    const started = loadAgentConfig(sources);
    writeFileSync(
      configPath(dir),
      JSON.stringify({ siteName: 'h1', paused: true, trainingWindow: 'always' }),
    );
    const now = readControls(sources, started);
    expect(now.paused).toBe(true);
    expect(now.trainingWindow).toBe(NIGHT); // the environment still beats the file
    writeFileSync(configPath(dir), '{broken');
    const errors: string[] = [];
    expect(readControls(sources, started, (e) => errors.push(e.message))).toBe(started);
    expect(errors[0]).toMatch(/agent\.json: is not valid JSON/);
  });

  it('decline while paused or without data, and take part otherwise', () => {
    const open = { optOut: false, paused: false, trainingWindow: 'always' };
    expect(declineReason({ ...open, paused: true }, { hasData: true })).toBe('the site has paused training');
    expect(declineReason(open, { hasData: false })).toBe('no data directory is configured');
    expect(declineReason(open, { hasData: true })).toBeNull();
  });
});
