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
    return `  ${left.padEnd(28)} ${f.description}${f.default !== undefined ? ` (default: ${f.default})` : ''}`;
  });
  return `Usage: ${name} ${synopsis}\n\n${description}\n\nFlags:\n${[...lines, `  ${'--help'.padEnd(28)} show this help`].join('\n')}\n`;
}

/** Parses flags strictly; unknown flags and missing values become UsageErrors naming the flag. */
export function parseFlags(argv: string[], flags: Record<string, FlagSpec>, allowPositionals = false) {
  try {
    return parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type }])),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
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
