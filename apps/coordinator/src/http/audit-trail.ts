import type { NextFunction, Request, Response } from 'express';
import type { AuditRecord } from '../audit/audit-log';
import type { ApiAuth } from '../auth/api-tokens';
import { log } from '../logging/logger';

/** What a request is to the audit trail. */
export interface RequestKind {
  /** A short name: federation.start, token.create, model.download, ... */
  action: string;
  /** The federation, site, token or checkpoint named in the path, if any. */
  target: string | null;
  /** mutation: changes something; sensitive: a read that is recorded (models, per-site figures, the trail). */
  kind: 'mutation' | 'sensitive' | 'read';
}

type Route = [
  method: string,
  path: RegExp,
  action: (m: RegExpExecArray) => string,
  kind: RequestKind['kind'],
];

const ACTIONS = new Set(['start', 'pause', 'resume', 'stop']);
const ID = '([^/]+)';

/** The API's routes, as the audit trail names them; the first capture is the target. */
const ROUTES: Route[] = [
  ['POST', /^\/api\/enroll$/, () => 'enroll', 'mutation'],
  ['POST', /^\/api\/tokens$/, () => 'token.create', 'mutation'],
  ['GET', /^\/api\/tokens$/, () => 'token.list', 'read'],
  ['POST', new RegExp(`^/api/tokens/${ID}/revoke$`), () => 'token.revoke', 'mutation'],
  ['POST', new RegExp(`^/api/sites/${ID}/(approve|revoke)$`), (m) => `site.${m[2]}`, 'mutation'],
  ['POST', /^\/api\/federations$/, () => 'federation.create', 'mutation'],
  ['GET', /^\/api\/federations$/, () => 'federation.list', 'read'],
  ['PUT', new RegExp(`^/api/federations/${ID}/checkpoint$`), () => 'model.upload', 'mutation'],
  [
    'POST',
    new RegExp(`^/api/federations/${ID}/enrollment-tokens$`),
    () => 'enrollment-token.create',
    'mutation',
  ],
  [
    'POST',
    new RegExp(`^/api/federations/${ID}/([^/]+)$`),
    // The action is a path segment anyone can write: only the real ones become names.
    (m) => `federation.${ACTIONS.has(m[2]) ? m[2] : 'unknown-action'}`,
    'mutation',
  ],
  ['GET', new RegExp(`^/api/federations/${ID}$`), () => 'federation.get', 'read'],
  [
    'GET',
    new RegExp(`^/api/federations/${ID}/(rounds|metrics|sample|sites)$`),
    (m) => `federation.${m[2]}`,
    'read',
  ],
  ['GET', new RegExp(`^/api/checkpoints/${ID}$`), () => 'model.download', 'sensitive'],
  ['GET', /^\/api\/audit$/, () => 'audit.read', 'sensitive'],
  ['GET', /^\/api\/me$/, () => 'me', 'read'],
];

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Pure: what a request is to the audit trail, from its method, path and query alone. */
export function describeRequest(method: string, path: string, query: URLSearchParams): RequestKind {
  const p = path.replace(/\/+$/, '') || '/';
  for (const [m, re, action, kind] of ROUTES) {
    if (m !== method) continue;
    const match = re.exec(p);
    if (!match) continue;
    const target = match[1] === undefined ? null : clip(decodeURIComponentSafe(match[1]), 200);
    const name = action(match);
    // Per-site figures tell about one hospital's data; global ones do not.
    const perSite = ['1', 'true'].includes(query.get('perSite') ?? '');
    if (name === 'federation.metrics' && perSite)
      return { action: 'metrics.per-site', target, kind: 'sensitive' };
    return { action: name, target, kind };
  }
  return MUTATING.has(method)
    ? { action: `http.${method.toLowerCase()}`, target: null, kind: 'mutation' }
    : { action: `http.${method.toLowerCase()}`, target: null, kind: 'read' };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** What a handler adds to its request's audit event: the id it created or resolved, a detail. */
export interface AuditNote {
  target?: string;
  detail?: Record<string, unknown>;
}

const notes = new WeakMap<Request, AuditNote>();

/**
 * Adds to the audit event of this request (recorded only if the request is one the trail records):
 * e.g. the id of the token just created, or the federation id a name resolved to. Never a secret.
 */
export function noteAudit(req: Request, note: AuditNote): void {
  const prev = notes.get(req);
  notes.set(req, { ...prev, ...note, detail: { ...prev?.detail, ...note.detail } });
}

/** Successful reads of these are recorded at most once per window per token and target. */
const REPEATED_READS = new Set(['metrics.per-site', 'audit.read']);

/**
 * Whether the trail records a finished request, and under which action. Anonymous requests are
 * recorded only as failed authentications and enrollments, both throttled per address by the
 * failure limiter: otherwise anyone could make the coordinator write a row per request. 429s are
 * not recorded: the failures that led to them were.
 */
export function auditAction(req: RequestKind, status: number, authenticated: boolean): string | null {
  if (status === 429) return null;
  if (status === 401) return 'auth.failed';
  if (!authenticated) return req.action === 'enroll' ? req.action : null;
  if (req.kind === 'mutation' || req.kind === 'sensitive' || status === 403) return req.action;
  return null;
}

/**
 * The audit trail as Express middleware, registered before the API boundary so that it also sees
 * the requests the boundary refuses. It records once the response is finished (or the connection
 * closed first), reading `req.auth` then: every mutation with its outcome, model downloads,
 * per-site metric reads, reads of the trail itself, refusals (403) and failed authentications
 * (401). It records no secrets: no bodies, no query strings, no headers. The address is `req.ip`,
 * which honours the configured trust proxy. A failed write is logged and changes no response.
 */
export function auditTrail(deps: {
  record: (event: AuditRecord) => Promise<void>;
  now?: () => number;
  /** How long a repeated successful read of the same thing by the same token is not recorded again. */
  repeatWindowMs?: number;
}) {
  const now = deps.now ?? Date.now;
  const window = deps.repeatWindowMs ?? 60_000;
  const lastRead = new Map<string, number>();
  let lastError = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  const failed = (err: unknown) => {
    // A database outage must not also flood the log: one line a minute, with a count.
    const t = now();
    if (t - lastError < 60_000) {
      suppressed++;
      return;
    }
    // `suppressed`: the failures since the last report that were not logged.
    log('audit').error({ err, ...(suppressed ? { suppressed } : {}) }, 'recording an audit event failed');
    lastError = t;
    suppressed = 0;
  };
  const repeated = (key: string): boolean => {
    const t = now();
    const last = lastRead.get(key);
    if (last !== undefined && t - last < window) return true;
    if (lastRead.size > 10_000) for (const [k, v] of lastRead) if (t - v >= window) lastRead.delete(k);
    lastRead.set(key, t);
    return false;
  };
  return (req: Request & { auth?: ApiAuth }, res: Response, next: NextFunction): void => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      try {
        const [path, query = ''] = req.originalUrl.split('?');
        const kind = describeRequest(req.method, path, new URLSearchParams(query));
        const status = res.statusCode;
        const auth = req.auth;
        const action = auditAction(kind, status, !!auth);
        if (!action) return;
        const note = notes.get(req);
        const target = note?.target ?? kind.target;
        if (auth && status < 400 && REPEATED_READS.has(action) && repeated(`${auth.id} ${action} ${target}`))
          return;
        const detail: Record<string, unknown> = { ...note?.detail };
        if (action === 'auth.failed') detail.tokenPresented = req.headers.authorization !== undefined;
        if (!res.writableFinished) detail.aborted = true;
        deps
          .record({
            actorTokenId: auth?.id ?? null,
            actorRole: auth?.role ?? null,
            actorLabel: auth?.label ?? null,
            address: req.ip ?? req.socket.remoteAddress ?? 'unknown',
            method: req.method,
            path: clip(path, 500),
            status,
            action,
            target,
            detail: Object.keys(detail).length ? detail : null,
          })
          .catch(failed);
      } catch (err) {
        failed(err);
      }
    };
    res.once('finish', finish);
    res.once('close', finish);
    next();
  };
}
