import { parseArgs } from 'node:util';

/** A flag of a command-line tool. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  default?: string;
  valueName?: string;
}

/** Bad command-line input: printed with the usage, exit code 2. */
export class UsageError extends Error {}

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

export function parseFlags(argv: string[], flags: Record<string, FlagSpec>) {
  try {
    return parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type }])),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A number flag (integer when `integer`), within [min, max], or its default. */
export function num(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
  fallback: number | undefined,
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
