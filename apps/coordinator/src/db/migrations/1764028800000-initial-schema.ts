import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The first schema: every table of the coordinator, with named constraints and indexes. */
export class InitialSchema1764028800000 implements MigrationInterface {
  name = 'InitialSchema1764028800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE federations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL CONSTRAINT federations_name_unique UNIQUE,
      task jsonb NOT NULL,
      model_config jsonb NOT NULL,
      plan jsonb NOT NULL,
      server_optimizer jsonb NOT NULL,
      secagg jsonb NOT NULL,
      dp jsonb NOT NULL,
      status text NOT NULL DEFAULT 'created' CONSTRAINT federations_status_check CHECK (status IN ('created','running','paused','stopped')),
      current_checkpoint text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE sites (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      federation_id uuid NOT NULL CONSTRAINT sites_federation_fk REFERENCES federations(id) ON DELETE CASCADE,
      name text NOT NULL,
      public_key bytea NOT NULL CONSTRAINT sites_public_key_unique UNIQUE CONSTRAINT sites_public_key_length CHECK (length(public_key) = 32),
      status text NOT NULL DEFAULT 'pending' CONSTRAINT sites_status_check CHECK (status IN ('pending','approved','revoked')),
      last_seen_at timestamptz,
      backend text,
      device text,
      sample_count integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query('CREATE UNIQUE INDEX sites_federation_name ON sites (federation_id, name)');
    await q.query(`CREATE TABLE enrollment_tokens (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      federation_id uuid NOT NULL CONSTRAINT enrollment_tokens_federation_fk REFERENCES federations(id) ON DELETE CASCADE,
      token_hash bytea NOT NULL CONSTRAINT enrollment_tokens_hash_unique UNIQUE,
      site_name text NOT NULL,
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE rounds (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      federation_id uuid NOT NULL CONSTRAINT rounds_federation_fk REFERENCES federations(id) ON DELETE CASCADE,
      number integer NOT NULL,
      stage text NOT NULL,
      stage_times jsonb NOT NULL DEFAULT '{}',
      participants jsonb NOT NULL DEFAULT '[]',
      dropouts jsonb NOT NULL DEFAULT '[]',
      bytes_in bigint NOT NULL DEFAULT 0,
      bytes_out bigint NOT NULL DEFAULT 0,
      checkpoint_in text NOT NULL,
      checkpoint_out text,
      error text,
      started_at timestamptz NOT NULL,
      finished_at timestamptz)`);
    await q.query('CREATE UNIQUE INDEX rounds_federation_number ON rounds (federation_id, number)');
    await q.query(`CREATE TABLE checkpoints (
      sha256 text PRIMARY KEY CONSTRAINT checkpoints_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
      size bigint NOT NULL,
      federation_id uuid CONSTRAINT checkpoints_federation_fk REFERENCES federations(id) ON DELETE SET NULL,
      round_number integer,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE metrics (
      id bigserial PRIMARY KEY,
      federation_id uuid NOT NULL CONSTRAINT metrics_federation_fk REFERENCES federations(id) ON DELETE CASCADE,
      round_number integer NOT NULL,
      site_id uuid CONSTRAINT metrics_site_fk REFERENCES sites(id) ON DELETE CASCADE,
      name text NOT NULL,
      value double precision NOT NULL,
      count integer NOT NULL DEFAULT 0)`);
    await q.query('CREATE INDEX metrics_federation_round ON metrics (federation_id, round_number)');
    await q.query(`CREATE TABLE api_tokens (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      token_hash bytea NOT NULL CONSTRAINT api_tokens_hash_unique UNIQUE,
      role text NOT NULL CONSTRAINT api_tokens_role_check CHECK (role IN ('admin','researcher')),
      label text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz)`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [
      'api_tokens',
      'metrics',
      'checkpoints',
      'rounds',
      'enrollment_tokens',
      'sites',
      'federations',
    ]) {
      await q.query(`DROP TABLE IF EXISTS ${t}`);
    }
  }
}
