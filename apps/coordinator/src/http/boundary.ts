import type { NextFunction, Request, Response } from 'express';
import getRawBody from 'raw-body';
import type { ApiAuth } from '../auth/api-tokens';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { requestLogger } from '../logging/request-log';
import { type BodyLimits, bodyRule, MEDIA_TYPE, mediaType } from './body-policy';
import type { FailureLimiter } from './failure-limiter';
import { sendError } from './respond';

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
 * or while reading). JSON is read with raw-body under the route's limit; a model upload is
 * left to its handler, which streams it. Nothing is read from a request that is refused.
 */
export function apiBoundary(deps: {
  verifyToken: (token: string | undefined) => Promise<ApiAuth>;
  limiter: FailureLimiter;
  limits: BodyLimits;
}) {
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
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity')
        return sendError(
          req,
          res,
          ErrorCode.UNSUPPORTED_MEDIA_TYPE,
          `bodies are taken as sent (no Content-Encoding), not ${encoding}`,
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
      // raw-body stops reading at the limit and leaves the rest unread (the connection then
      // closes); body-parser would read a refused body to its end first.
      let text: string;
      try {
        text = await getRawBody(req, {
          limit: rule.limit,
          length: req.headers['content-length'],
          encoding: 'utf-8',
        });
      } catch (err) {
        const e = err as { type?: string };
        if (e.type === 'entity.too.large')
          return sendError(
            req,
            res,
            ErrorCode.PAYLOAD_TOO_LARGE,
            `${req.path} takes at most ${kib(rule.limit)}`,
          );
        if (e.type === 'request.size.invalid')
          return sendError(req, res, ErrorCode.INVALID_INPUT, 'the body is shorter than its Content-Length');
        res.destroy();
        return;
      }
      try {
        req.body = JSON.parse(text);
      } catch {
        return sendError(req, res, ErrorCode.INVALID_INPUT, 'the request body is not valid JSON');
      }
      if (typeof req.body !== 'object' || req.body === null)
        return sendError(
          req,
          res,
          ErrorCode.INVALID_INPUT,
          'the request body must be a JSON object or array',
        );
      return next();
    } catch (err) {
      requestLogger(req).error({ err }, 'internal error in the API boundary');
      sendError(req, res, ErrorCode.INTERNAL, 'internal error; see the coordinator log');
    }
  };
}
