/** A REST answer as tests read it: status, headers, the raw text and the parsed JSON (if any). */
export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown> & unknown[];
}

/**
 * Calls a coordinator's REST API as any client would: bearer token when given, a JSON body when
 * given (a string is sent as is), extra headers; never throws on a status.
 */
export async function apiCall(
  base: string,
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    body:
      opts.body === undefined
        ? undefined
        : typeof opts.body === 'string'
          ? opts.body
          : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: json as ApiAnswer['json'] };
}
