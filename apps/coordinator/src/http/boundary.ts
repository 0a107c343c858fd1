import { json } from 'body-parser';
import type { NextFunction, Request, Response } from 'express';
import type { ApiAuth } from '../auth/api-tokens';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { type BodyLimits, bodyRule, MEDIA_TYPE, mediaType } from './body-policy';
import type { FailureLimiter } from './failure-limiter';
import { bodyUnread, sendError } from './respond';

/** A request as the API sees it once the boundary let it through. */
export interface ApiRequest extends Request {
  /** The verified API token, when the request carried one. */
  auth?: ApiAuth;
}

function hasBody(req: Request): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

function bearer(req: Request): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  return h.startsWith('Bearer ') ? h.slice(7).trim() : '';
}

const kib = (n: number) =>
  n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(0)} MiB` : `${(n / 1024).toFixed(0)} KiB`;

/**
 * The HTTP boundary, before any route runs: an address that used up its failed authentications
 * gets 429 with Retry-After; a bearer token is verified (401 when it is not valid); then the body
 * rule of the route decides, from the headers alone, whether a body may be read at all (only
 * enrollment without a token), of which media type (415) and how large (413, from Content-Length
 * or while reading). JSON is parsed with body-parser under the route's limit; a model upload is
 * left to its handler, which streams it. Nothing is read from a request that is refused.
 */
export function apiBoundary(deps: {
  verifyToken: (token: string | undefined) => Promise<ApiAuth>;
  limiter: FailureLimiter;
  limits: BodyLimits;
}) {
  const parsers = new Map<number, ReturnType<typeof json>>();
  const parser = (limit: number) => {
    let p = parsers.get(limit);
    if (!p) {
      p = json({ limit, strict: true, type: () => true });
      parsers.set(limit, p);
    }
    return p;
  };
  return async (req: ApiRequest, res: Response, next: NextFunction): Promise<void> => {
    const address = req.ip ?? '';
    try {
      const wait = await deps.limiter.retryAfterSeconds(address);
      if (wait > 0) {
        return sendError(
          req,
          res,
          ErrorCode.RATE_LIMITED,
          `too many failed authentications from this address; retry in ${wait} s`,
          { 'Retry-After': String(wait) },
        );
      }
      const rule = bodyRule(req.method, req.originalUrl, deps.limits);
      const enrolling = rule.kind === 'json' && rule.public;
      res.once('finish', () => {
        const s = res.statusCode;
        if (s === 401 || (enrolling && s >= 400 && s < 500 && s !== 429)) void deps.limiter.fail(address);
      });
      const token = bearer(req);
      if (token !== undefined) {
        try {
          req.auth = await deps.verifyToken(token);
        } catch (err) {
          if (err instanceof CoordinatorError) return sendError(req, res, err.code, err.message);
          throw err;
        }
      }
      if (!hasBody(req)) return next();
      if (rule.kind === 'none')
        return sendError(
          req,
          res,
          ErrorCode.PAYLOAD_TOO_LARGE,
          `${req.method} ${req.path} takes no request body`,
        );
      if (!(rule.kind === 'json' && rule.public) && !req.auth)
        return sendError(
          req,
          res,
          ErrorCode.UNAUTHENTICATED,
          'an API token is required (Authorization: Bearer fsk_...)',
        );
      const want = MEDIA_TYPE[rule.kind];
      const got = mediaType(req.headers['content-type']);
      if (got !== want)
        return sendError(
          req,
          res,
          ErrorCode.UNSUPPORTED_MEDIA_TYPE,
          `${req.method} ${req.path} takes ${want}, not ${got || 'a body without Content-Type'}`,
        );
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > rule.limit)
        return sendError(
          req,
          res,
          ErrorCode.PAYLOAD_TOO_LARGE,
          `the body is ${declared} bytes; ${req.path} takes at most ${kib(rule.limit)}`,
        );
      if (rule.kind === 'model') return next();
      parser(rule.limit)(req, res, (err?: unknown) => {
        if (!err) return next();
        const e = err as { type?: string; status?: number };
        if (e.type === 'entity.too.large')
          return sendError(
            req,
            res,
            ErrorCode.PAYLOAD_TOO_LARGE,
            `${req.path} takes at most ${kib(rule.limit)}`,
          );
        if (e.type === 'entity.parse.failed')
          return sendError(req, res, ErrorCode.INVALID_INPUT, 'the request body is not valid JSON');
        if (e.status === 415)
          return sendError(
            req,
            res,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            'unsupported body encoding or charset',
          );
        if (bodyUnread(req) || req.destroyed) return res.destroy();
        return sendError(req, res, ErrorCode.INVALID_INPUT, 'the request body could not be read');
      });
    } catch (err) {
      console.error(err);
      sendError(req, res, ErrorCode.INTERNAL, 'internal error; see the coordinator log');
    }
  };
}
