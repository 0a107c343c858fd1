import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * With a server moving average (strategy.serverEma), a round leaves two models: the checkpoint
 * sites train the next round from (checkpoint_out) and the model it publishes, the average
 * (model_out), which is scored, shown and downloaded; the federation keeps its latest published
 * model beside its current checkpoint. Both are null where they would equal the checkpoint.
 */
export class PublishedModel1764720000000 implements MigrationInterface {
  name = 'PublishedModel1764720000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE rounds ADD COLUMN model_out text');
    await q.query('ALTER TABLE federations ADD COLUMN current_model text');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE rounds DROP COLUMN IF EXISTS model_out');
    await q.query('ALTER TABLE federations DROP COLUMN IF EXISTS current_model');
  }
}
