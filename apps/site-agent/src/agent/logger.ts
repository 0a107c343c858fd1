/** What the agent says while it runs: human lines on a terminal, JSON lines otherwise. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  readonly json: boolean;
}

/** A logger on `stream`; `format` auto means JSON lines unless the stream is a terminal. */
export function createLogger(
  format: 'auto' | 'pretty' | 'json' = 'auto',
  stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  name = 'agent',
): Logger {
  const json = format === 'json' || (format === 'auto' && !stream.isTTY);
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    const time = new Date().toISOString();
    if (json) {
      stream.write(`${JSON.stringify({ time, level, name, message, ...fields })}\n`);
      return;
    }
    const extra = fields
      ? Object.entries(fields)
          .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(5)) : JSON.stringify(v)}`)
          .join(' ')
      : '';
    stream.write(
      `${time.slice(11, 19)} ${level === 'info' ? '' : `${level.toUpperCase()} `}${message}${extra ? `  ${extra}` : ''}\n`,
    );
  };
  return {
    json,
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
