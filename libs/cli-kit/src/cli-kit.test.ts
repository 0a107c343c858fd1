import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  asksForVersion,
  type FlagSpec,
  numFlag,
  oneOf,
  parseFlags,
  runCli,
  UsageError,
  usage,
  versionLine,
} from './cli-kit';

const FLAGS: Record<string, FlagSpec> = {
  size: { type: 'string', valueName: 'px', description: 'slice size', default: '64' },
  json: { type: 'boolean', description: 'print JSON' },
};

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe('cli-kit', () => {
  it('parses known flags and positionals, and names unknown flags and missing values', () => {
    expect(parseFlags(['--size', '32', '--json', 'dir'], FLAGS, true)).toEqual({
      values: { size: '32', json: true },
      positionals: ['dir'],
      lists: {},
    });
    expect(() => parseFlags(['--sise', '32'], FLAGS)).toThrow(UsageError);
    expect(() => parseFlags(['--sise', '32'], FLAGS)).toThrow(/--sise/);
    expect(() => parseFlags(['--size'], FLAGS)).toThrow(/--size/);
    expect(() => parseFlags(['dir'], FLAGS)).toThrow(UsageError);
  });

  it('collects every value of a repeatable flag in order; other flags keep their last value', () => {
    const flags: Record<string, FlagSpec> = {
      ...FLAGS,
      input: { type: 'string', valueName: 'file', description: 'an input', multiple: true },
    };
    expect(parseFlags(['--input', 'a', '--size', '8', '--input', 'b', '--size', '16'], flags)).toEqual({
      values: { size: '16' },
      positionals: [],
      lists: { input: ['a', 'b'] },
    });
    expect(parseFlags(['--json'], flags).lists).toEqual({ input: [] });
    expect(usage('tool', '', '', flags)).toMatch(/--input <file> +an input \(repeatable\)/);
  });

  it('checks numbers and choices, naming the flag and the allowed range', () => {
    expect(numFlag({ size: '32' }, 'size', 8, 1024)).toBe(32);
    expect(numFlag({}, 'size', 8, 1024, 64)).toBe(64);
    expect(() => numFlag({ size: '3.5' }, 'size', 8, 1024)).toThrow(
      '--size: "3.5" must be an integer in [8, 1024]',
    );
    expect(() => numFlag({ size: '2000' }, 'size', 8, 1024)).toThrow(/in \[8, 1024\]/);
    expect(() => numFlag({}, 'size', 8, 1024)).toThrow('--size is required');
    expect(numFlag({ lr: '1e-3' }, 'lr', 0, 1, undefined, false)).toBe(1e-3);
    expect(oneOf({ b: 'wasm' }, 'b', ['wasm', 'cpu'], 'cpu')).toBe('wasm');
    expect(() => oneOf({ b: 'gpu' }, 'b', ['wasm', 'cpu'], 'cpu')).toThrow(
      '--b: "gpu" must be one of wasm, cpu',
    );
  });

  it('prints help from the flag table and maps failures to exit codes 2 (usage) and 1', async () => {
    const help = usage('tool', 'check DIR', 'Checks a folder.', FLAGS);
    expect(help).toContain('--size <px>');
    expect(help).toContain('(default: 64)');
    expect(help).toContain('--help');
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    await runCli('tool', help, async () => {
      throw new UsageError('bad flag');
    });
    expect(process.exitCode).toBe(2);
    expect(String(err.mock.calls[0][0])).toMatch(/^tool: bad flag\n\nUsage: tool check DIR/);
    await runCli('tool', help, async () => {
      throw new Error('disk full');
    });
    expect(process.exitCode).toBe(1);
    await runCli('tool', help, async () => 0);
    expect(process.exitCode).toBe(0);
  });

  it('knows --version, -V and version as the first argument, and prints the protocol beside the version', () => {
    for (const argv of [['--version'], ['-V'], ['version', 'x']]) expect(asksForVersion(argv)).toBe(true);
    for (const argv of [[], ['run', '--version'], ['--help']]) expect(asksForVersion(argv)).toBe(false);
    expect(versionLine('fedsynth-agent', '1.2.3', 4)).toBe('fedsynth-agent 1.2.3 (protocol 4)');
  });
});
