import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentConfigError, configPath, loadAgentConfig } from './agent-config';

function stateDir(file?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-agent-cfg-'));
  if (file !== undefined)
    writeFileSync(configPath(dir), typeof file === 'string' ? file : JSON.stringify(file));
  return dir;
}

describe('loadAgentConfig', () => {
  it('applies defaults, then file, then environment, then flags', () => {
    const dir = stateDir({ siteName: 'from-file', maxBatch: 4, trainingWindow: '20:00-06:00' });
    const cfg = loadAgentConfig({
      stateDir: dir,
      env: { FEDSYNTH_AGENT_MAX_BATCH: '8', FEDSYNTH_AGENT_PAUSED: 'yes' },
      flags: { maxBatch: '16' },
    });
    expect(cfg.siteName).toBe('from-file');
    expect(cfg.maxBatch).toBe(16);
    expect(cfg.paused).toBe(true);
    expect(cfg.trainingWindow).toBe('20:00-06:00');
    expect(cfg.maxLocalSteps).toBe(10_000);
    expect(cfg.modalities).toEqual({ source: 'mr', target: 'ct', mask: 'mask' });
    expect(cfg.stateDir).toBe(dir);
  });

  it('reports every bad setting at once, naming each', () => {
    const dir = stateDir({ siteName: 'bad name!', trainingWindow: '25:00-01:00', unknownKey: 1 });
    let err: AgentConfigError | undefined;
    try {
      loadAgentConfig({
        stateDir: dir,
        env: { FEDSYNTH_AGENT_MAX_LOCAL_STEPS: 'lots', FEDSYNTH_AGENT_COORDINATOR_URL: 'ftp://x' },
      });
    } catch (e) {
      err = e as AgentConfigError;
    }
    expect(err).toBeInstanceOf(AgentConfigError);
    const text = err!.problems.join('\n');
    expect(text).toMatch(/maxLocalSteps \(from \$FEDSYNTH_AGENT_MAX_LOCAL_STEPS\): "lots" is not a number/);
    expect(text).toMatch(/siteName/);
    expect(text).toMatch(/trainingWindow/);
    expect(text).toMatch(/coordinatorUrl/);
    expect(text).toMatch(/unknownKey/);
  });

  it('names a config file that is not JSON, and a missing one when it is required', () => {
    expect(() => loadAgentConfig({ stateDir: stateDir('{oops'), env: {} })).toThrow(
      /agent\.json: is not valid JSON/,
    );
    expect(() => loadAgentConfig({ stateDir: stateDir(), env: {}, requireFile: true })).toThrow(
      /fedsynth-agent init/,
    );
  });
});
