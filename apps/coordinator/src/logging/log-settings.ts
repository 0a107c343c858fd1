import { UsageError } from '@fedsynth/cli-kit';

/** The levels of --log-level, most verbose first; `silent` writes nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** json: one JSON object a line, for log pipelines; pretty: human lines; auto: pretty on a terminal. */
export const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogSettings {
  level: LogLevel;
  format: 'json' | 'pretty';
}

function choice<T extends string>(raw: string, origin: string, allowed: readonly T[]): T {
  if (!allowed.includes(raw as T))
    throw new UsageError(`${origin}: "${raw}" must be one of ${allowed.join(', ')}`);
  return raw as T;
}

/**
 * The coordinator's log settings: --log-level and --log-format, else $FEDSYNTH_LOG_LEVEL and
 * $FEDSYNTH_LOG_FORMAT, else info, and JSON unless the log stream (stderr) is a terminal. A value
 * that is not allowed is a usage error naming its origin and the allowed values.
 */
export function logSettings(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  terminal = !!process.stderr.isTTY,
): LogSettings {
  const pick = (flag: string, variable: string) =>
    flags[flag] !== undefined
      ? { raw: String(flags[flag]), origin: `--${flag}` }
      : env[variable] !== undefined && env[variable] !== ''
        ? { raw: String(env[variable]), origin: `$${variable}` }
        : undefined;
  const level = pick('log-level', 'FEDSYNTH_LOG_LEVEL');
  const format = pick('log-format', 'FEDSYNTH_LOG_FORMAT');
  const f = format ? choice(format.raw, format.origin, LOG_FORMATS) : 'auto';
  return {
    level: level ? choice(level.raw, level.origin, LOG_LEVELS) : 'info',
    format: f === 'auto' ? (terminal ? 'pretty' : 'json') : f,
  };
}
