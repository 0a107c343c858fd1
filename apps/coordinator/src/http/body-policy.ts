/** Largest request body each kind of route reads. */
export interface BodyLimits {
  /** JSON bodies of the admin API (federation settings, tokens, actions). */
  json: number;
  /** The public enrollment request (a token, a key, a signature). */
  enroll: number;
  /** A model upload (safetensors, streamed to disk). */
  model: number;
}

export const DEFAULT_BODY_LIMITS: BodyLimits = {
  json: 64 * 1024,
  enroll: 4 * 1024,
  model: 1024 ** 3,
};

/** What a route may receive as its body. */
export type BodyRule =
  | { kind: 'none' }
  | { kind: 'json'; limit: number; public: boolean }
  | { kind: 'model'; limit: number };

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The body rule of a request, decided from its method and path alone, before any of the body is
 * read: only enrollment takes a body without an API token; a model upload is binary; every other
 * mutation takes a small JSON body; reads take none.
 */
export function bodyRule(method: string, path: string, limits: BodyLimits): BodyRule {
  const p = path.split('?')[0].replace(/\/+$/, '');
  if (method === 'POST' && p === '/api/enroll') return { kind: 'json', limit: limits.enroll, public: true };
  if (method === 'PUT' && /^\/api\/federations\/[^/]+\/checkpoint$/.test(p))
    return { kind: 'model', limit: limits.model };
  if (MUTATING.has(method) && p.startsWith('/api/'))
    return { kind: 'json', limit: limits.json, public: false };
  return { kind: 'none' };
}

/** The media type of a Content-Type header, lower-case, without parameters. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

/** The media type each rule reads. */
export const MEDIA_TYPE = { json: 'application/json', model: 'application/octet-stream' } as const;
