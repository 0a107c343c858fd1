/** The levels of --log-level, most verbose first (the same as the coordinator's); silent writes nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What the agent says while it runs: human lines on a terminal, JSON lines otherwise. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  readonly json: boolean;
}

type RecordLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A logger on `stream` that writes the records at `level` and above; `format` auto means JSON
 * lines unless the stream is a terminal. A JSON line is `{"level","time","name","msg",...fields}`
 * (level by name, time in ISO 8601), as the coordinator's records; the four keep their values
 * whatever the fields hold.
 */
export function createLogger(
  format: 'auto' | 'pretty' | 'json' = 'auto',
  stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  name = 'agent',
  level: LogLevel = 'info',
): Logger {
  const json = format === 'json' || (format === 'auto' && !stream.isTTY);
  const least = LOG_LEVELS.indexOf(level);
  const write = (recordLevel: RecordLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(recordLevel) < least) return;
    const time = new Date().toISOString();
    if (json) {
      const core = { level: recordLevel, time, name, msg };
      stream.write(`${JSON.stringify(Object.assign({ ...core }, fields, core))}\n`);
      return;
    }
    const extra = fields
      ? Object.entries(fields)
          .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(5)) : JSON.stringify(v)}`)
          .join(' ')
      : '';
    stream.write(
      `${time.slice(11, 19)} ${recordLevel === 'info' ? '' : `${recordLevel.toUpperCase()} `}${msg}${extra ? `  ${extra}` : ''}\n`,
    );
  };
  return {
    json,
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
