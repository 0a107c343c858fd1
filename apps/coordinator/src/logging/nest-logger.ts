import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

/** Nest's own chatter at start (modules loaded, every route mapped): debug, not info. */
const STARTUP_DETAIL = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer']);

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/**
 * Nest's logger as records of the coordinator's: `context` becomes a field, an Error or a stack
 * becomes `err`. Nest's `log` is info (debug for its per-module and per-route lines at start).
 */
export class NestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  private write(level: Level, message: unknown, params: unknown[]): void {
    const strings = params.filter((p): p is string => typeof p === 'string');
    // (message, stack?, context?): a context is one line, a stack several.
    const context = strings.length > 0 && !strings.at(-1)!.includes('\n') ? strings.pop() : undefined;
    const stack = strings.find((s) => s.includes('\n'));
    const fields: Record<string, unknown> = { component: 'nest', ...(context ? { context } : {}) };
    if (level === 'info' && context && STARTUP_DETAIL.has(context)) level = 'debug';
    if (message instanceof Error) {
      this.logger[level]({ ...fields, err: message }, message.message);
    } else if (stack) {
      const err = Object.assign(new Error(String(message)), { stack });
      this.logger[level]({ ...fields, err }, String(message));
    } else if (message !== null && typeof message === 'object') {
      this.logger[level]({ ...fields, detail: message }, context ?? 'nest');
    } else {
      this.logger[level](fields, String(message));
    }
  }

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }
}
