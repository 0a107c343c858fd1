import { Brackets, type QueryDeepPartialEntity, type Repository } from 'typeorm';
import type { AuditEventEntity } from '../db/entities';

/** The largest page of audit events one read returns. */
export const MAX_AUDIT_PAGE = 500;

/** One event to record: who (the token, if any, and the client address), what, on what, and how it ended. */
export interface AuditRecord {
  actorTokenId: string | null;
  actorRole: string | null;
  actorLabel: string | null;
  address: string;
  method: string;
  path: string;
  status: number;
  action: string;
  target: string | null;
  detail: Record<string, unknown> | null;
}

/** A page of the trail, newest first. */
export interface AuditQuery {
  limit: number;
  /** Only events with a smaller id (the previous page's last id). */
  before?: string;
  /**
   * For a token limited to federations: only events whose target is one of them (or names one of
   * them in its detail, as a site's or a model's events do) and the token's own actions.
   */
  scope?: { federations: string[]; tokenId: string };
}

/** The coordinator's audit trail of admin and researcher actions (the audit_events table). */
export class AuditLog {
  /** Writes under way: a shutdown waits for them before the database closes. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly repo: Repository<AuditEventEntity>) {}

  async record(event: AuditRecord): Promise<void> {
    // jsonb `detail` is a plain object; TypeORM's deep-partial type cannot say so.
    const write = this.repo.insert(event as QueryDeepPartialEntity<AuditEventEntity>);
    this.pending.add(write);
    try {
      await write;
    } finally {
      this.pending.delete(write);
    }
  }

  /** Resolves once the writes begun so far have ended (either way). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  list(q: AuditQuery): Promise<AuditEventEntity[]> {
    const qb = this.repo
      .createQueryBuilder('e')
      .orderBy('e.id', 'DESC')
      .limit(Math.min(Math.max(1, Math.floor(q.limit)), MAX_AUDIT_PAGE));
    if (q.before !== undefined) qb.andWhere('e.id < :before', { before: q.before });
    const scope = q.scope;
    if (scope)
      qb.andWhere(
        new Brackets((w) =>
          w
            .where('e.target = ANY(:feds)', { feds: scope.federations })
            .orWhere("e.detail->>'federationId' = ANY(:feds)")
            .orWhere('e.actor_token_id = :me', { me: scope.tokenId }),
        ),
      );
    return qb.getMany();
  }
}
