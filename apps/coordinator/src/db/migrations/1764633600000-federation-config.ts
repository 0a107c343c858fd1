import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A federation's settings become one configuration document (libs/protocol FederationConfig) with
 * a version: every change makes a new version, kept in federation_config_versions, and each round
 * records the version it ran with. The earlier columns are carried over with the keys that moved
 * (plan.fedProxMu -> strategy.proxMu, secagg.stageSeconds -> plan.stageSeconds, secagg.graph: the
 * complete graph); rounds also record their secure-aggregation graph and threshold. Anything else is kept as it was, so a setting that was accepted but never valid
 * now fails to load and pauses its federation with the reason instead of failing rounds.
 */
export class FederationConfig1764633600000 implements MigrationInterface {
  name = 'FederationConfig1764633600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE federations
      ADD COLUMN config jsonb,
      ADD COLUMN config_version integer NOT NULL DEFAULT 1,
      ADD COLUMN status_reason text`);
    await q.query(`UPDATE federations SET config = jsonb_build_object(
      'task', task,
      'model', model_config,
      'plan', (plan - 'fedProxMu')
        || CASE WHEN secagg ? 'stageSeconds' THEN jsonb_build_object('stageSeconds', secagg->'stageSeconds') ELSE '{}'::jsonb END,
      'strategy', server_optimizer
        || CASE WHEN plan ? 'fedProxMu' THEN jsonb_build_object('proxMu', plan->'fedProxMu') ELSE '{}'::jsonb END,
      'secagg', (secagg - 'stageSeconds' - 'graph') || '{"graph":{"kind":"complete"}}'::jsonb,
      'dp', dp)`);
    await q.query('ALTER TABLE federations ALTER COLUMN config SET NOT NULL');
    await q.query(`ALTER TABLE federations
      DROP COLUMN task, DROP COLUMN model_config, DROP COLUMN plan,
      DROP COLUMN server_optimizer, DROP COLUMN secagg, DROP COLUMN dp`);
    await q.query(`CREATE TABLE federation_config_versions (
      federation_id uuid NOT NULL CONSTRAINT federation_config_versions_federation_fk REFERENCES federations(id) ON DELETE CASCADE,
      version integer NOT NULL,
      config jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by uuid,
      CONSTRAINT federation_config_versions_pk PRIMARY KEY (federation_id, version))`);
    await q.query(
      'INSERT INTO federation_config_versions (federation_id, version, config) SELECT id, 1, config FROM federations',
    );
    await q.query('ALTER TABLE rounds ADD COLUMN config_version integer, ADD COLUMN secagg jsonb');
    await q.query('UPDATE rounds SET config_version = 1');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE rounds DROP COLUMN IF EXISTS config_version, DROP COLUMN IF EXISTS secagg');
    await q.query('DROP TABLE IF EXISTS federation_config_versions');
    await q.query(`ALTER TABLE federations
      ADD COLUMN task jsonb, ADD COLUMN model_config jsonb, ADD COLUMN plan jsonb,
      ADD COLUMN server_optimizer jsonb, ADD COLUMN secagg jsonb, ADD COLUMN dp jsonb`);
    await q.query(`UPDATE federations SET task = config->'task', model_config = config->'model',
      plan = config->'plan', server_optimizer = config->'strategy', secagg = config->'secagg', dp = config->'dp'`);
    await q.query(
      `ALTER TABLE federations DROP COLUMN config, DROP COLUMN config_version, DROP COLUMN status_reason`,
    );
  }
}
