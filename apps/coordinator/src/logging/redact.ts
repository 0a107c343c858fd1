/** API tokens (fsk_...) and enrollment tokens (fse_...) wherever they appear in a text. */
const TOKEN = /fs[ke]_[\w-]+/g;

/** Query parameters whose values are never logged. */
const SECRET_PARAM = /token|secret|password|passwd|key|auth|cookie|session|signature|credential/i;

export const REDACTED = '[redacted]';

/** `text` with every API or enrollment token replaced by [redacted]. */
export function scrubSecrets(text: string): string {
  return text.replace(TOKEN, REDACTED);
}

/**
 * A request URL as it may be logged: the path (decoded) with any token in it replaced, and the
 * query string with the values of secret-looking parameters (token, adminToken, key, ...) and any
 * token replaced.
 */
export function scrubUrl(url: string): { path: string; query?: string } {
  const q = url.indexOf('?');
  const raw = q < 0 ? url : url.slice(0, q);
  let path = raw;
  try {
    path = decodeURI(raw);
  } catch {
    // logged as received
  }
  path = scrubSecrets(path);
  if (q < 0 || q === url.length - 1) return { path };
  const params = new URLSearchParams(url.slice(q + 1));
  const kept: string[] = [];
  for (const [k, v] of params)
    kept.push(
      `${scrubSecrets(encodeURIComponent(k))}=${SECRET_PARAM.test(k) ? REDACTED : scrubSecrets(encodeURIComponent(v))}`,
    );
  return { path, query: kept.join('&') };
}
