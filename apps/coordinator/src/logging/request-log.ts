import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { log } from './logger';
import { scrubUrl } from './redact';

/** Paths that monitoring polls: their successful requests are logged at debug, not info. */
const QUIET_PATHS = new Set(['/health', '/metrics']);

/** A request id a client or proxy sent (X-Request-Id) that is safe to log and echo back. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

type Req = IncomingMessage & { originalUrl?: string; route?: { path?: unknown }; ip?: string };

function requestId(req: IncomingMessage, res: ServerResponse): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

/**
 * One record per HTTP request once it is answered (or the client went away): `reqId` (the
 * X-Request-Id the client sent, or a new one, echoed in the answer), `method`, `path` and
 * `query` with secrets replaced (see redact.ts), `route` (the matched route, e.g.
 * /api/federations/:id), `statusCode`, `responseTime` in ms and `remoteAddress` (honouring the
 * trust-proxy setting). No headers and no bodies are logged: no Authorization, cookie or token.
 * Level: error for 5xx, info otherwise, debug for successful /health and /metrics.
 */
export function requestLog(logger: Logger) {
  const summary = (req: Req, res: ServerResponse) =>
    `${req.method} ${scrubUrl(req.originalUrl ?? req.url ?? '').path} ${res.statusCode}`;
  const fields = (req: Req, res: ServerResponse, responseTime: number) => {
    const { path, query } = scrubUrl(req.originalUrl ?? req.url ?? '');
    const route = typeof req.route?.path === 'string' ? req.route.path : undefined;
    return {
      method: req.method,
      path,
      ...(query ? { query } : {}),
      ...(route ? { route } : {}),
      statusCode: res.statusCode,
      responseTime,
      remoteAddress: req.ip ?? req.socket.remoteAddress,
    };
  };
  return pinoHttp({
    logger: logger.child({ component: 'http' }),
    genReqId: requestId,
    quietReqLogger: true,
    quietResLogger: true,
    customLogLevel: (req, res, err) => {
      if (err || res.statusCode >= 500) return 'error';
      const { path } = scrubUrl((req as Req).originalUrl ?? req.url ?? '');
      return QUIET_PATHS.has(path) && res.statusCode < 400 ? 'debug' : 'info';
    },
    customSuccessObject: (req, res, o: { responseTime: number }) => fields(req, res, o.responseTime),
    customErrorObject: (req, res, _err, o: { responseTime: number }) => fields(req, res, o.responseTime),
    customSuccessMessage: (req, res) =>
      res.writableEnded ? summary(req, res) : `${summary(req, res)} (aborted by the client)`,
    customErrorMessage: (req, res) => summary(req, res),
  });
}

/** The logger of a request (its records carry its `reqId`), or the http one outside a request. */
export function requestLogger(req: IncomingMessage): Logger {
  return (req as { log?: Logger }).log ?? log('http');
}
