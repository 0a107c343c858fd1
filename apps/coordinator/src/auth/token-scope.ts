import type { DataSource } from 'typeorm';
import type { FederationEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import type { FederationService } from '../federations/federation-service';
import { requireUuid } from '../http/ids';
import type { ApiAuth } from './api-tokens';

function authenticated(auth: ApiAuth | undefined): ApiAuth {
  if (!auth)
    throw new CoordinatorError(
      ErrorCode.UNAUTHENTICATED,
      'an API token is required (Authorization: Bearer fsk_...)',
    );
  return auth;
}

/**
 * The one place where an API token's federation scope is enforced. A token limited to federations
 * reaches only those, and everything in them (rounds, metrics, models, sites); a federation, site
 * or checkpoint outside its scope is refused with FORBIDDEN whether or not it exists, so a limited
 * token cannot probe what else the coordinator holds. Tokens for every federation pass unchecked.
 */
export class TokenScope {
  constructor(
    private readonly federations: FederationService,
    private readonly ds: DataSource,
  ) {}

  /** Whether the token reaches every federation. */
  isUnscoped(auth: ApiAuth | undefined): boolean {
    return authenticated(auth).federations === null;
  }

  /** The federation `ref` (its id or name) when the token may reach it; FORBIDDEN otherwise. */
  async federation(auth: ApiAuth | undefined, ref: string): Promise<FederationEntity> {
    const { federations } = authenticated(auth);
    if (federations === null) return this.federations.get(ref);
    let fed: FederationEntity | undefined;
    try {
      fed = await this.federations.get(ref);
    } catch (err) {
      if (!(err instanceof CoordinatorError && err.code === ErrorCode.NOT_FOUND)) throw err;
    }
    if (!fed || !federations.includes(fed.id)) throw await this.refusal(federations);
    return fed;
  }

  /** Of these federations, the ones the token may reach. */
  visible<T extends { id: string }>(auth: ApiAuth | undefined, feds: T[]): T[] {
    const { federations } = authenticated(auth);
    return federations === null ? feds : feds.filter((f) => federations.includes(f.id));
  }

  /** Refuses a token limited to federations: `what` needs one for every federation. */
  async requireUnscoped(auth: ApiAuth | undefined, what: string): Promise<void> {
    const { federations } = authenticated(auth);
    if (federations === null) return;
    const names = await this.names(federations);
    throw new CoordinatorError(
      ErrorCode.FORBIDDEN,
      `${what} needs a token for every federation; this token is limited to federations ${names}`,
    );
  }

  /**
   * The federation of a site (null when there is no such site), refusing a site whose federation
   * the token may not reach, or that does not exist, when the token is limited.
   */
  async site(auth: ApiAuth | undefined, siteId: string): Promise<string | null> {
    const { federations } = authenticated(auth);
    const rows: { federation_id: string }[] = await this.ds.query(
      'SELECT federation_id FROM sites WHERE id = $1',
      [requireUuid(siteId, 'site id')],
    );
    const owner = rows[0]?.federation_id ?? null;
    if (federations !== null && !(owner && federations.includes(owner)))
      throw await this.refusal(federations);
    return owner;
  }

  /**
   * Which audit events a token sees: all of them for an admin token of every federation; for a
   * limited one, those of its federations and its own (see AuditLog.list).
   */
  auditScope(auth: ApiAuth | undefined): { federations: string[]; tokenId: string } | undefined {
    const { federations, id } = authenticated(auth);
    return federations === null ? undefined : { federations, tokenId: id };
  }

  /**
   * The federation a checkpoint belongs to (stored for it, a round's input or output, or its
   * current model), preferring one the token may reach; FORBIDDEN when the token is limited and
   * none of them is in its scope. null for an unlimited token when no federation claims it.
   */
  async checkpoint(auth: ApiAuth | undefined, sha256: string): Promise<string | null> {
    const { federations } = authenticated(auth);
    if (!/^[0-9a-f]{64}$/.test(sha256))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'a checkpoint is addressed by 64 lower-case hex characters (sha256)',
      );
    const rows: { federation_id: string }[] = await this.ds.query(
      `SELECT federation_id FROM checkpoints WHERE sha256 = $1 AND federation_id IS NOT NULL
       UNION SELECT federation_id FROM rounds WHERE checkpoint_in = $1 OR checkpoint_out = $1
       UNION SELECT id FROM federations WHERE current_checkpoint = $1`,
      [sha256],
    );
    const owners = rows.map((r) => r.federation_id);
    if (federations === null) return owners[0] ?? null;
    const reachable = owners.find((f) => federations.includes(f));
    if (!reachable) throw await this.refusal(federations);
    return reachable;
  }

  private async refusal(federations: string[]): Promise<CoordinatorError> {
    return new CoordinatorError(
      ErrorCode.FORBIDDEN,
      `this token is limited to federations ${await this.names(federations)}`,
    );
  }

  /** The scope's federation names (ids of any that no longer exist), for messages. */
  private async names(ids: string[]): Promise<string> {
    const byId = new Map((await this.federations.byIds(ids)).map((f) => [f.id, f.name]));
    return ids.map((id) => byId.get(id) ?? id).join(', ');
  }
}
