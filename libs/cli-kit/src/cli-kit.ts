import { parseArgs } from 'node:util';

/**
 * Small helpers shared by fedsynth's command-line tools: strict flag parsing, help text built from
 * the flag table, validated numbers and choices whose errors name the flag, and one exit-code rule
 * (0 ok, 1 failure with a clear message, 2 bad usage followed by the help text).
 */

/** A flag of a command-line tool. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  default?: string;
  valueName?: string;
  /** A string flag that may be given several times; its values come back in `lists`, in order. */
  multiple?: boolean;
}

/** Thrown for bad command-line input; the tool prints it with its usage and exits 2. */
export class UsageError extends Error {}

/** Usage text of a tool from its flags. */
export function usage(
  name: string,
  synopsis: string,
  description: string,
  flags: Record<string, FlagSpec>,
): string {
  const lines = Object.entries(flags).map(([k, f]) => {
    const left = `--${k}${f.type === 'string' ? ` <${f.valueName ?? 'value'}>` : ''}`;
    return `  ${left.padEnd(28)} ${f.description}${f.multiple ? ' (repeatable)' : ''}${f.default !== undefined ? ` (default: ${f.default})` : ''}`;
  });
  return `Usage: ${name} ${synopsis}\n\n${description}\n\nFlags:\n${[...lines, `  ${'--help'.padEnd(28)} show this help`].join('\n')}\n`;
}

/**
 * Parses flags strictly; unknown flags and missing values become UsageErrors naming the flag. A
 * flag given twice keeps its last value, except a `multiple` one: every value of those is in
 * `lists` (an empty list when the flag is absent), and not in `values`.
 */
export function parseFlags(
  argv: string[],
  flags: Record<string, FlagSpec>,
  allowPositionals = false,
): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  lists: Record<string, string[]>;
} {
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(
          Object.entries(flags).map(([k, f]) => [
            k,
            { type: f.type, ...(f.multiple && f.type === 'string' ? { multiple: true } : {}) },
          ]),
        ),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals,
    }) as typeof parsed;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values: Record<string, string | boolean | undefined> = {};
  const lists: Record<string, string[]> = {};
  for (const [k, f] of Object.entries(flags)) if (f.multiple && f.type === 'string') lists[k] = [];
  for (const [k, v] of Object.entries(parsed.values)) {
    if (Array.isArray(v)) lists[k] = v;
    else values[k] = v;
  }
  return { values, positionals: parsed.positionals, lists };
}

/** A number flag within [min, max] (an integer unless `integer` is false), or its default. */
export function numFlag(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
  fallback?: number,
  integer = true,
): number {
  const raw = values[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(
      `--${name}: "${raw}" must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`,
    );
  }
  return n;
}

/** A flag that must be one of `choices`, or its default. */
export function oneOf<T extends string>(
  values: Record<string, unknown>,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T))
    throw new UsageError(`--${name}: "${raw}" must be one of ${choices.join(', ')}`);
  return raw as T;
}

/** Whether a tool's arguments ask for its version: `--version`, `-V` or `version` first. */
export function asksForVersion(argv: readonly string[]): boolean {
  return ['--version', '-V', 'version'].includes(argv[0] ?? '');
}

/** What `--version` prints for a tool that speaks the coordinator <-> agent protocol. */
export function versionLine(tool: string, version: string, protocolVersion: number): string {
  return `${tool} ${version} (protocol ${protocolVersion})`;
}

/** Runs a CLI body, mapping usage errors to exit 2 and other errors to exit 1 with a clear message. */
export async function runCli(name: string, help: string, body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n\n${help}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`${name}: ${(err as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}
