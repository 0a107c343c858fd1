import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * API tokens that expire, are limited to federations and remember who made them and when they were
 * last used; the coordinator's audit trail of admin and researcher actions.
 */
export class TokenScopesAuditEvents1764545000000 implements MigrationInterface {
  name = 'TokenScopesAuditEvents1764545000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE api_tokens
      ADD COLUMN expires_at timestamptz,
      ADD COLUMN federation_ids uuid[],
      ADD COLUMN created_by uuid CONSTRAINT api_tokens_created_by_fk REFERENCES api_tokens(id) ON DELETE SET NULL,
      ADD COLUMN last_used_at timestamptz`);
    // NULL is every federation; an empty list would be a token that reaches nothing.
    await q.query(`ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_federation_ids_not_empty
      CHECK (federation_ids IS NULL OR cardinality(federation_ids) > 0)`);
    await q.query(`CREATE TABLE audit_events (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT now(),
      actor_token_id uuid,
      actor_role text,
      actor_label text,
      address text NOT NULL,
      method text,
      path text,
      status integer,
      action text,
      target text,
      detail jsonb)`);
    await q.query('CREATE INDEX audit_events_at ON audit_events (at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS audit_events');
    await q.query(`ALTER TABLE api_tokens
      DROP CONSTRAINT IF EXISTS api_tokens_federation_ids_not_empty,
      DROP COLUMN IF EXISTS last_used_at,
      DROP COLUMN IF EXISTS created_by,
      DROP COLUMN IF EXISTS federation_ids,
      DROP COLUMN IF EXISTS expires_at`);
  }
}
