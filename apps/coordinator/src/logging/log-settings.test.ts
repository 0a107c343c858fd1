import { UsageError } from '@fedsynth/cli-kit';
import { describe, expect, it } from 'vitest';
import { logSettings } from './log-settings';

describe('coordinator log settings', () => {
  it('default to info, JSON off a terminal and pretty on one', () => {
    expect(logSettings({}, {}, false)).toEqual({ level: 'info', format: 'json' });
    expect(logSettings({}, {}, true)).toEqual({ level: 'info', format: 'pretty' });
    expect(logSettings({ 'log-format': 'auto' }, {}, true).format).toBe('pretty');
  });

  it('take flags over the environment', () => {
    const env = { FEDSYNTH_LOG_LEVEL: 'debug', FEDSYNTH_LOG_FORMAT: 'pretty' };
    expect(logSettings({}, env, false)).toEqual({ level: 'debug', format: 'pretty' });
    expect(logSettings({ 'log-level': 'warn', 'log-format': 'json' }, env, true)).toEqual({
      level: 'warn',
      format: 'json',
    });
    expect(logSettings({}, { FEDSYNTH_LOG_LEVEL: '' }, false).level).toBe('info');
  });

  it('refuse an unknown value, naming where it came from and the allowed values', () => {
    expect(() => logSettings({ 'log-level': 'verbose' }, {}, false)).toThrow(UsageError);
    expect(() => logSettings({ 'log-level': 'verbose' }, {}, false)).toThrow(
      '--log-level: "verbose" must be one of trace, debug, info, warn, error, fatal, silent',
    );
    expect(() => logSettings({}, { FEDSYNTH_LOG_LEVEL: 'loud' }, false)).toThrow(
      '$FEDSYNTH_LOG_LEVEL: "loud" must be one of trace',
    );
    expect(() => logSettings({ 'log-format': 'xml' }, {}, false)).toThrow(
      '--log-format: "xml" must be one of json, pretty, auto',
    );
  });
});
