import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configPath, loadAgentConfig } from './agent-config';

function stateDir(file: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-agent-logcfg-'));
  writeFileSync(configPath(dir), JSON.stringify({ siteName: 's', ...file }));
  return dir;
}

const level = (file: Record<string, unknown>, env: NodeJS.ProcessEnv, flag?: string) =>
  loadAgentConfig({ stateDir: stateDir(file), env, flags: { logLevel: flag } }).logLevel;

describe('the agent log settings', () => {
  it('log level: info by default, then agent.json, $FEDSYNTH_LOG_LEVEL, $FEDSYNTH_AGENT_LOG_LEVEL, --log-level', () => {
    expect(level({}, {})).toBe('info');
    expect(level({ logLevel: 'warn' }, {})).toBe('warn');
    expect(level({ logLevel: 'warn' }, { FEDSYNTH_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(level({}, { FEDSYNTH_LOG_LEVEL: 'debug', FEDSYNTH_AGENT_LOG_LEVEL: 'error' })).toBe('error');
    expect(level({ logLevel: 'warn' }, { FEDSYNTH_AGENT_LOG_LEVEL: 'error' }, 'silent')).toBe('silent');
  });

  it('log format: $FEDSYNTH_LOG_FORMAT under $FEDSYNTH_AGENT_LOG_FORMAT under --log-format', () => {
    const format = (env: NodeJS.ProcessEnv, flag?: string) =>
      loadAgentConfig({ stateDir: stateDir(), env, flags: { logFormat: flag } }).logFormat;
    expect(format({})).toBe('auto');
    expect(format({ FEDSYNTH_LOG_FORMAT: 'pretty' })).toBe('pretty');
    expect(format({ FEDSYNTH_LOG_FORMAT: 'pretty', FEDSYNTH_AGENT_LOG_FORMAT: 'json' })).toBe('json');
    expect(format({ FEDSYNTH_AGENT_LOG_FORMAT: 'json' }, 'pretty')).toBe('pretty');
  });

  it('names a bad value, where it came from and the allowed values', () => {
    expect(() => level({}, {}, 'loud')).toThrow(
      'logLevel (from --log-level): "loud" must be one of trace, debug, info, warn, error, fatal, silent',
    );
    expect(() => level({}, { FEDSYNTH_LOG_LEVEL: 'verbose' })).toThrow(
      'logLevel (from $FEDSYNTH_LOG_LEVEL): "verbose" must be one of trace, debug',
    );
    expect(() => level({ logLevel: 'chatty' }, {})).toThrow(
      'logLevel: must be one of trace, debug, info, warn, error, fatal, silent',
    );
  });
});
