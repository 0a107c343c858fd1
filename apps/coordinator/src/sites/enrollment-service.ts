import { enrollmentPayload } from '@fedsynth/protocol';
import { ed25519PublicKeyProblem, ed25519Verify } from '@fedsynth/secure-agg';
import { type DataSource, IsNull } from 'typeorm';
import { hashToken, newToken } from '../auth/api-tokens';
import { EnrollmentTokenEntity, SiteEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { requireUuid } from '../http/ids';

export { enrollmentPayload } from '@fedsynth/protocol';

/** Ed25519 verification with raw 32-byte keys (node:crypto, via libs/secure-agg). */
export const verifyEd25519 = ed25519Verify;

/** One-time enrollment tokens, site enrollment with proof of key possession, approval and revocation. */
export class EnrollmentService {
  private readonly revokedListeners: ((siteId: string) => void)[] = [];

  constructor(private readonly ds: DataSource) {}

  /** Called with a site's id as soon as it is revoked (the gateway closes its connections). */
  onRevoked(listener: (siteId: string) => void): void {
    this.revokedListeners.push(listener);
  }

  /** A one-time token for a named site, valid for `ttlHours`; the plaintext is returned once. */
  async createToken(
    federationId: string,
    siteName: string,
    ttlHours = 72,
  ): Promise<{ token: string; expiresAt: Date }> {
    if (!/^[\w.-]{1,100}$/.test(siteName))
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, 'siteName: 1-100 letters, digits, ".", "_" or "-"');
    if (!(ttlHours > 0 && ttlHours <= 24 * 365))
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, `ttlHours must be in (0, 8760], got ${ttlHours}`);
    const token = newToken('fse_');
    const expiresAt = new Date(Date.now() + ttlHours * 3600_000);
    await this.ds
      .getRepository(EnrollmentTokenEntity)
      .save({ federationId, siteName, tokenHash: hashToken(token), expiresAt, usedAt: null });
    return { token, expiresAt };
  }

  /**
   * Enrolls a site: the token must be unused and unexpired, the signature must prove possession of
   * the key, and the key must be new. The site starts pending until an admin approves it. The token
   * is consumed in the same transaction, so two racing enrollments cannot both succeed.
   */
  async enroll(input: {
    token: string;
    publicKey: Uint8Array;
    signature: Uint8Array;
    now?: Date;
  }): Promise<SiteEntity> {
    const { token, publicKey, signature } = input;
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32)
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, 'publicKey must be 32 bytes (Ed25519)');
    // A small-order or non-canonical key would let a trivial signature "prove" possession.
    const weak = ed25519PublicKeyProblem(publicKey);
    if (weak)
      throw new CoordinatorError(ErrorCode.WEAK_KEY, `publicKey is not an acceptable Ed25519 key: ${weak}`);
    if (!verifyEd25519(publicKey, enrollmentPayload(token, publicKey), signature)) {
      throw new CoordinatorError(
        ErrorCode.BAD_SIGNATURE,
        'the enrollment signature does not verify with the given public key',
      );
    }
    const now = input.now ?? new Date();
    return this.ds.transaction(async (m) => {
      const tokens = m.getRepository(EnrollmentTokenEntity);
      const row = await tokens.findOneBy({ tokenHash: hashToken(token) });
      if (!row) throw new CoordinatorError(ErrorCode.TOKEN_INVALID, 'unknown enrollment token');
      if (row.usedAt)
        throw new CoordinatorError(ErrorCode.TOKEN_USED, 'this enrollment token was already used');
      if (row.expiresAt.getTime() <= now.getTime())
        throw new CoordinatorError(
          ErrorCode.TOKEN_EXPIRED,
          `this enrollment token expired at ${row.expiresAt.toISOString()}`,
        );
      const sites = m.getRepository(SiteEntity);
      if (await sites.existsBy({ publicKey: Buffer.from(publicKey) }))
        throw new CoordinatorError(ErrorCode.KEY_ENROLLED, 'this public key is already enrolled');
      if (await sites.existsBy({ federationId: row.federationId, name: row.siteName })) {
        throw new CoordinatorError(
          ErrorCode.NAME_TAKEN,
          `a site named "${row.siteName}" is already enrolled in this federation`,
        );
      }
      const used = await tokens.update({ id: row.id, usedAt: IsNull() }, { usedAt: now });
      if (!used.affected)
        throw new CoordinatorError(ErrorCode.TOKEN_USED, 'this enrollment token was already used');
      return sites.save({
        federationId: row.federationId,
        name: row.siteName,
        publicKey: Buffer.from(publicKey),
        status: 'pending',
      });
    });
  }

  async setStatus(siteId: string, status: 'approved' | 'revoked'): Promise<SiteEntity> {
    const repo = this.ds.getRepository(SiteEntity);
    const site = await repo.findOneBy({ id: requireUuid(siteId, 'site id') });
    if (!site) throw new CoordinatorError(ErrorCode.NOT_FOUND, `no site ${siteId}`);
    if (site.status === 'revoked')
      throw new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `site "${site.name}" is revoked; it must enroll again with a new key`,
      );
    site.status = status;
    const saved = await repo.save(site);
    if (status === 'revoked') for (const l of this.revokedListeners) l(saved.id);
    return saved;
  }

  list(federationId: string): Promise<SiteEntity[]> {
    return this.ds.getRepository(SiteEntity).find({ where: { federationId }, order: { createdAt: 'ASC' } });
  }
}
