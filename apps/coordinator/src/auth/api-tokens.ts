import { createHash, randomBytes } from 'node:crypto';
import { IsNull, type Repository } from 'typeorm';
import { type ApiRole, ApiTokenEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';

const PREFIX = 'fsk_';

/** Who a verified API token speaks for. */
export interface ApiAuth {
  id: string;
  role: ApiRole;
}

/** sha256 of a secret token: the database never holds a usable token. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Makes a fresh random token with the given prefix (32 random bytes, base64url). */
export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** API tokens for admins and researchers: shown once at creation, stored hashed, revocable. */
export class ApiTokenService {
  constructor(private readonly repo: Repository<ApiTokenEntity>) {}

  /**
   * Creates a token; the plaintext is returned here and never again. `given` installs a token made
   * elsewhere (a deployment secret) instead of a fresh one; it must look like one of ours.
   */
  async create(
    role: ApiRole,
    label = '',
    given?: string,
  ): Promise<{ id: string; token: string; role: ApiRole }> {
    if (role !== 'admin' && role !== 'researcher')
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, `role must be admin or researcher, got "${role}"`);
    if (given !== undefined && !/^fsk_[A-Za-z0-9_-]{32,}$/.test(given))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'a given API token must be "fsk_" followed by at least 32 letters, digits, "-" or "_" (e.g. fsk_$(openssl rand -hex 32))',
      );
    const token = given ?? newToken(PREFIX);
    const row = await this.repo.save({ tokenHash: hashToken(token), role, label });
    return { id: row.id, token, role };
  }

  /** The role of a valid, unrevoked token; UNAUTHENTICATED otherwise. */
  async verify(token: string | undefined): Promise<ApiAuth> {
    if (!token?.startsWith(PREFIX))
      throw new CoordinatorError(
        ErrorCode.UNAUTHENTICATED,
        'an API token is required (Authorization: Bearer fsk_...)',
      );
    const row = await this.repo.findOneBy({ tokenHash: hashToken(token), revokedAt: IsNull() });
    if (!row) throw new CoordinatorError(ErrorCode.UNAUTHENTICATED, 'the API token is unknown or revoked');
    return { id: row.id, role: row.role };
  }

  async revoke(id: string): Promise<void> {
    const r = await this.repo.update({ id, revokedAt: IsNull() }, { revokedAt: new Date() });
    if (!r.affected) throw new CoordinatorError(ErrorCode.NOT_FOUND, `no active API token ${id}`);
  }

  /** Whether any admin token exists (the first `serve` prints one when none does). */
  async hasAdmin(): Promise<boolean> {
    return (await this.repo.countBy({ role: 'admin', revokedAt: IsNull() })) > 0;
  }
}
