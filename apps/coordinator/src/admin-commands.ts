import type { TokenRequest } from './auth/token-admin';
import type { CoordinatorContext } from './http/context';

type When = Date | string | null | undefined;

/** A token as the CLI shows it, from the database or from the REST API (dates as ISO text). */
export interface TokenRow {
  id: string;
  role: string;
  label: string;
  createdAt: When;
  expiresAt: When;
  revokedAt: When;
  lastUsedAt: When;
  federations: string[] | null;
}

/** A new token, with its secret (shown once). */
export interface CreatedToken {
  id: string;
  token: string;
  role: string;
  label: string;
  expiresAt: When;
  federations: string[] | null;
}

/** An audit event as the CLI shows it. */
export interface AuditRow {
  id: string;
  at: When;
  actorRole: string | null;
  actorLabel: string | null;
  actorTokenId: string | null;
  address: string;
  method: string | null;
  path: string | null;
  status: number | null;
  action: string | null;
  target: string | null;
}

/** Where the `token` and `audit` commands act: the database itself, or a coordinator's REST API. */
export interface AdminBackend {
  createToken(req: TokenRequest): Promise<CreatedToken>;
  listTokens(): Promise<TokenRow[]>;
  revokeToken(id: string): Promise<TokenRow>;
  audit(limit: number, before?: string): Promise<AuditRow[]>;
}

/** The commands on the open database (what `token create` always did). */
export function databaseBackend(ctx: CoordinatorContext): AdminBackend {
  return {
    createToken: (req) => ctx.tokenAdmin.create(req),
    listTokens: () => ctx.tokenAdmin.list(),
    revokeToken: (id) => ctx.tokenAdmin.revoke(id),
    audit: (limit, before) => ctx.audit.list({ limit, before }),
  };
}

/** The same commands through the REST API of a running coordinator, with an admin token. */
export function restBackend(
  call: (method: string, path: string, body?: unknown) => Promise<unknown>,
): AdminBackend {
  return {
    createToken: async (req) => (await call('POST', '/api/tokens', req)) as CreatedToken,
    listTokens: async () => (await call('GET', '/api/tokens')) as TokenRow[],
    revokeToken: async (id) =>
      (await call('POST', `/api/tokens/${encodeURIComponent(id)}/revoke`)) as TokenRow,
    audit: async (limit, before) =>
      (await call(
        'GET',
        `/api/audit?limit=${limit}${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`,
      )) as AuditRow[],
  };
}

const iso = (w: When) => (w ? new Date(w).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

/** Text columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** Whether a token works now: active, expired or revoked. */
export function tokenState(t: TokenRow, now: Date): string {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && new Date(t.expiresAt).getTime() <= now.getTime()) return 'expired';
  return 'active';
}

/** `token list` as a table. */
export function tokenTable(rows: TokenRow[], now: Date): string {
  return table(
    ['id', 'role', 'state', 'label', 'created', 'expires', 'last used', 'federations'],
    rows.map((t) => [
      t.id,
      t.role,
      tokenState(t, now),
      t.label || '-',
      iso(t.createdAt),
      iso(t.expiresAt),
      iso(t.lastUsedAt),
      t.federations ? t.federations.join(',') : 'all',
    ]),
  );
}

/** `audit` as a table, newest first. */
export function auditTable(rows: AuditRow[]): string {
  return table(
    ['id', 'time', 'who', 'address', 'action', 'target', 'status', 'request'],
    rows.map((e) => [
      String(e.id),
      iso(e.at),
      e.actorRole ? `${e.actorLabel || e.actorTokenId?.slice(0, 8) || '?'} (${e.actorRole})` : '-',
      e.address,
      e.action ?? '-',
      e.target ?? '-',
      e.status === null ? '-' : String(e.status),
      `${e.method ?? ''} ${e.path ?? ''}`.trim() || '-',
    ]),
  );
}
