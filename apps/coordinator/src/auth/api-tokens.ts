import { createHash, randomBytes } from 'node:crypto';
import { type FindOptionsSelect, IsNull, type Repository } from 'typeorm';
import { type ApiRole, ApiTokenEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { requireUuid } from '../http/ids';
import { log } from '../logging/logger';

const PREFIX = 'fsk_';

/** How often a token's last_used_at is written at most: a busy dashboard must not write per request. */
export const LAST_USED_INTERVAL_MS = 60_000;

/** Who a verified API token speaks for. */
export interface ApiAuth {
  id: string;
  role: ApiRole;
  label: string;
  /** The federation ids the token may reach; null: every federation. */
  federations: string[] | null;
}

/** A token as it is listed: never its secret nor the secret's hash. */
export interface ApiTokenInfo {
  id: string;
  role: ApiRole;
  label: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  federationIds: string[] | null;
  createdBy: string | null;
}

/** Options of a new token. */
export interface NewTokenOptions {
  /** When it stops working; absent: never. Must lie in the future. */
  expiresAt?: Date;
  /** The federation ids it may reach; absent: every federation. */
  federationIds?: string[];
  /** The id of the token that creates it. */
  createdBy?: string;
  /** A token made elsewhere (a deployment secret) to install instead of a fresh one. */
  given?: string;
}

/** sha256 of a secret token: the database never holds a usable token. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Makes a fresh random token with the given prefix (32 random bytes, base64url). */
export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Every column but the hash: a listing never loads it. */
const INFO_COLUMNS: FindOptionsSelect<ApiTokenEntity> = {
  id: true,
  role: true,
  label: true,
  createdAt: true,
  expiresAt: true,
  revokedAt: true,
  lastUsedAt: true,
  federationIds: true,
  createdBy: true,
};

function info(row: ApiTokenEntity): ApiTokenInfo {
  return {
    id: row.id,
    role: row.role,
    label: row.label,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    lastUsedAt: row.lastUsedAt,
    federationIds: row.federationIds,
    createdBy: row.createdBy,
  };
}

/**
 * API tokens for admins and researchers: shown once at creation, stored hashed, optionally expiring
 * and limited to federations, listed without their secrets, revocable.
 */
export class ApiTokenService {
  /** When this process last wrote each token's last_used_at (ms since the epoch). */
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly repo: Repository<ApiTokenEntity>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Creates a token; the plaintext is returned here and never again. `given` installs a token made
   * elsewhere (a deployment secret) instead of a fresh one; it must look like one of ours.
   */
  async create(
    role: ApiRole,
    label = '',
    opts: NewTokenOptions = {},
  ): Promise<{
    id: string;
    token: string;
    role: ApiRole;
    expiresAt: Date | null;
    federationIds: string[] | null;
  }> {
    if (role !== 'admin' && role !== 'researcher')
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, `role must be admin or researcher, got "${role}"`);
    const { given, expiresAt, federationIds, createdBy } = opts;
    if (given !== undefined && !/^fsk_[A-Za-z0-9_-]{32,}$/.test(given))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'a given API token must be "fsk_" followed by at least 32 letters, digits, "-" or "_" (e.g. fsk_$(openssl rand -hex 32))',
      );
    if (expiresAt !== undefined && !(expiresAt.getTime() > this.now().getTime()))
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, 'expiresAt: the expiry must lie in the future');
    if (federationIds !== undefined && federationIds.length === 0)
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'federations: name at least one federation, or none at all for every federation',
      );
    const scope = federationIds && [...new Set(federationIds.map((f) => requireUuid(f, 'a federation id')))];
    const token = given ?? newToken(PREFIX);
    const row = await this.repo.save({
      tokenHash: hashToken(token),
      role,
      label,
      expiresAt: expiresAt ?? null,
      federationIds: scope ?? null,
      createdBy: createdBy === undefined ? null : requireUuid(createdBy, 'createdBy'),
    });
    return { id: row.id, token, role, expiresAt: row.expiresAt, federationIds: row.federationIds };
  }

  /** Every token, oldest first, without secrets or hashes. */
  async list(): Promise<ApiTokenInfo[]> {
    const rows = await this.repo.find({ select: INFO_COLUMNS, order: { createdAt: 'ASC' } });
    return rows.map(info);
  }

  /**
   * Who a valid token speaks for: UNAUTHENTICATED when it is missing, unknown or revoked,
   * TOKEN_EXPIRED (with the time) when it expired. Records the use at most once a minute.
   */
  async verify(token: string | undefined): Promise<ApiAuth> {
    if (!token?.startsWith(PREFIX))
      throw new CoordinatorError(
        ErrorCode.UNAUTHENTICATED,
        'an API token is required (Authorization: Bearer fsk_...)',
      );
    const row = await this.repo.findOneBy({ tokenHash: hashToken(token), revokedAt: IsNull() });
    if (!row) throw new CoordinatorError(ErrorCode.UNAUTHENTICATED, 'the API token is unknown or revoked');
    const now = this.now();
    if (row.expiresAt && row.expiresAt.getTime() <= now.getTime())
      throw new CoordinatorError(
        ErrorCode.TOKEN_EXPIRED,
        `the API token expired at ${row.expiresAt.toISOString()}`,
      );
    await this.touch(row, now);
    return { id: row.id, role: row.role, label: row.label, federations: row.federationIds };
  }

  /**
   * Writes last_used_at when the stored one is older than the interval, and at most once per
   * interval from this process (so concurrent requests of one dashboard do not each write). The
   * conditional update keeps replicas from writing more than once per interval between them too.
   * A failed write is logged: it must not refuse a valid token.
   */
  private async touch(row: ApiTokenEntity, now: Date): Promise<void> {
    const since = now.getTime() - LAST_USED_INTERVAL_MS;
    if (row.lastUsedAt && row.lastUsedAt.getTime() > since) return;
    if ((this.touched.get(row.id) ?? Number.NEGATIVE_INFINITY) > since) return;
    this.touched.set(row.id, now.getTime());
    try {
      await this.repo
        .createQueryBuilder()
        .update()
        .set({ lastUsedAt: now })
        .where('id = :id AND (last_used_at IS NULL OR last_used_at <= :since)', {
          id: row.id,
          since: new Date(since),
        })
        .execute();
    } catch (err) {
      log('auth').warn({ err, tokenId: row.id }, 'recording the use of an API token failed');
    }
  }

  /** Revokes an active token; NOT_FOUND when there is none with that id (or it was revoked already). */
  async revoke(id: string): Promise<ApiTokenInfo> {
    const tokenId = requireUuid(id, 'token id');
    const r = await this.repo.update({ id: tokenId, revokedAt: IsNull() }, { revokedAt: this.now() });
    if (!r.affected) throw new CoordinatorError(ErrorCode.NOT_FOUND, `no active API token ${tokenId}`);
    this.touched.delete(tokenId);
    return info(await this.repo.findOneOrFail({ select: INFO_COLUMNS, where: { id: tokenId } }));
  }

  /**
   * Whether a usable admin token for everything exists (unrevoked, unexpired, not limited to
   * federations): the first `serve` prints one when none does, so tokens can always be managed.
   */
  async hasAdmin(): Promise<boolean> {
    return this.repo
      .createQueryBuilder('t')
      .where("t.role = 'admin' AND t.revoked_at IS NULL AND t.federation_ids IS NULL")
      .andWhere('(t.expires_at IS NULL OR t.expires_at > :now)', { now: this.now() })
      .getExists();
  }
}
