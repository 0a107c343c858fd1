import pino, { type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { LOG_LEVELS, type LogLevel, type LogSettings } from './log-settings';
import { scrubSecrets } from './redact';

export type { Logger };

/** Fields that may carry a secret, wherever they appear in a log record (one level deep). */
const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'token',
  'adminToken',
  'enrollmentToken',
  'apiKey',
  'password',
  'secret',
];

/** Errors as type, message (scrubbed), code and stack: never a driver's query parameters. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    message: scrubSecrets(err.message),
    ...(code !== undefined ? { code } : {}),
    stack: err.stack === undefined ? undefined : scrubSecrets(err.stack),
  };
}

/**
 * The coordinator's logger (pino) on `stream` (stderr by default). JSON: one object a line with
 * `level` (its name), `time` (ISO 8601), `pid`, `hostname`, `name` and `msg`, and the record's
 * fields; pretty: a human line each, written at once (no worker thread, nothing lost at exit).
 */
export function createLogger(
  settings: LogSettings,
  stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): Logger {
  const options = {
    name: 'coordinator',
    level: settings.level,
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
    redact: {
      paths: [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`)],
      censor: '[redacted]',
    },
  };
  if (settings.format === 'pretty') {
    const prettify = prettyFactory({
      colorize: !!stream.isTTY,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name,component',
      messageFormat: '{if component}{component}: {end}{msg}',
      singleLine: true,
    });
    const destination: DestinationStream = { write: (line: string) => void stream.write(prettify(line)) };
    return pino(options, destination);
  }
  return pino({ ...options, formatters: { level: (label: string) => ({ level: label }) } }, stream);
}

function levelFromEnv(): LogLevel {
  const raw = process.env.FEDSYNTH_LOG_LEVEL as LogLevel | undefined;
  return raw && LOG_LEVELS.includes(raw) ? raw : 'warn';
}

/**
 * The process's logger. `fedsynth-coordinator serve` installs one from its flags; until then (the
 * coordinator inside tests or a benchmark) it is JSON on stderr at warn, or $FEDSYNTH_LOG_LEVEL.
 */
let current: Logger = createLogger({ level: levelFromEnv(), format: 'json' });
const children = new Map<string, Logger>();

/** Makes `logger` the process's logger. */
export function useLogger(logger: Logger): void {
  current = logger;
  children.clear();
}

/** The process's logger, or its child for one part of the coordinator (a `component` field). */
export function log(component?: string): Logger {
  if (component === undefined) return current;
  let child = children.get(component);
  if (!child) {
    child = current.child({ component });
    children.set(component, child);
  }
  return child;
}
