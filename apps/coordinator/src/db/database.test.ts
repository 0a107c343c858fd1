import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFederationConfig } from '@fedsynth/protocol';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from './database';
import { ApiTokenEntity, FederationEntity, MetricEntity, RoundEntity, SiteEntity } from './entities';
import { MIGRATIONS } from './migrations';
import { adminUrl } from './testing';

const ADMIN_URL = adminUrl();
const dbName = `fedsynth_t_${randomBytes(4).toString('hex')}`;
const testUrl = ADMIN_URL.replace(/\/[^/]*$/, `/${dbName}`);

beforeAll(async () => {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
});

afterAll(async () => {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await c.end();
});

const federation = (name: string): Partial<FederationEntity> => ({
  name,
  config: { task: { source: 'mr', target: 'ct' }, plan: { localSteps: 50 } },
});

async function exercise(db: Database) {
  const ds = db.dataSource;
  const tables = (
    await ds.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    )
  ).map((r: { table_name: string }) => r.table_name);
  expect(tables).toEqual(
    expect.arrayContaining([
      'api_tokens',
      'checkpoints',
      'enrollment_tokens',
      'federations',
      'metrics',
      'rounds',
      'sites',
    ]),
  );
  const fed = await ds.getRepository(FederationEntity).save(federation('consortium-a'));
  const key = randomBytes(32);
  const site = await ds
    .getRepository(SiteEntity)
    .save({ federationId: fed.id, name: 'hospital-1', publicKey: key });
  const back = await ds.getRepository(SiteEntity).findOneByOrFail({ id: site.id });
  expect(Buffer.from(back.publicKey).equals(key)).toBe(true);
  expect(back.status).toBe('pending');
  // The same identity key cannot be enrolled twice, and a bad status is refused by the schema.
  await expect(
    ds.getRepository(SiteEntity).save({ federationId: fed.id, name: 'hospital-2', publicKey: key }),
  ).rejects.toThrow(/sites_public_key_unique/);
  await expect(ds.query("UPDATE sites SET status = 'odd' WHERE id = $1", [site.id])).rejects.toThrow(
    /sites_status_check/,
  );
  await ds.getRepository(RoundEntity).save({
    federationId: fed.id,
    number: 0,
    stage: 'completed',
    checkpointIn: 'a'.repeat(64),
    startedAt: new Date(),
    participants: [{ index: 1, siteId: site.id }],
  });
  await ds
    .getRepository(MetricEntity)
    .save({ federationId: fed.id, roundNumber: 0, siteId: null, name: 'mae', value: 61.5, count: 120 });
  await ds.getRepository(ApiTokenEntity).save({ tokenHash: randomBytes(32), role: 'researcher', label: 'r' });
  const rounds = await ds.getRepository(RoundEntity).findBy({ federationId: fed.id });
  expect(rounds[0].participants).toEqual([{ index: 1, siteId: site.id }]);
  expect(rounds[0].bytesIn).toBe('0');
  return fed.id;
}

describe('database', () => {
  it('migrates and stores every table on the real PostgreSQL', async () => {
    const db = await openDatabase({ databaseUrl: testUrl, dataDir: mkdtempSync(join(tmpdir(), 'unused-')) });
    expect(db.kind).toBe('postgres');
    await exercise(db);
    // Migrations are idempotent: a second open runs none and keeps the data.
    await db.close();
    const again = await openDatabase({ databaseUrl: testUrl, dataDir: '/nonexistent' });
    expect(await again.dataSource.getRepository(FederationEntity).count()).toBe(1);
    await again.close();
  });

  it('runs the same migrations on the embedded database, persists across restarts and holds a lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-embedded-'));
    const db = await openDatabase({ dataDir: dir });
    expect(db.kind).toBe('embedded');
    const fedId = await exercise(db);
    await expect(openDatabase({ dataDir: dir })).rejects.toMatchObject({ code: 'LOCKED' });
    await db.close();
    const reopened = await openDatabase({ dataDir: dir });
    const fed = await reopened.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: fedId });
    expect((fed.config as { task: unknown }).task).toEqual({ source: 'mr', target: 'ct' });
    expect(await reopened.dataSource.getRepository(MetricEntity).count()).toBe(1);
    await reopened.close();
    // A lock left by a live process is respected; one left by a dead process is taken over.
    writeFileSync(join(dir, 'embedded-db.lock'), String(process.ppid));
    await expect(openDatabase({ dataDir: dir })).rejects.toThrow(/in use by process/);
    writeFileSync(join(dir, 'embedded-db.lock'), '999999');
    const taken = await openDatabase({ dataDir: dir });
    await taken.close();
  }, 120_000);

  it('carries federations of the earlier settings columns into one configuration document, keys moved', async () => {
    const { freshPostgresUrl } = await import('./testing');
    const { url, drop } = await freshPostgresUrl();
    try {
      // The schema as the first two migrations left it, with a federation in the old columns.
      const old = new DataSource({ type: 'postgres', url, migrations: MIGRATIONS.slice(0, 2) });
      await old.initialize();
      await old.runMigrations();
      const [{ id }] = await old.query(
        `INSERT INTO federations (name, task, model_config, plan, server_optimizer, secagg, dp, status)
         VALUES ('legacy', '{"source":"mr","target":"ct"}', '{"size":32,"channels":[8,16],"numResBlocks":1}',
           '{"localSteps":20,"fedProxMu":0.1,"minSites":3}', '{"kind":"fedadam","lr":0.05,"beta1":0.9,"beta2":0.99,"tau":0.001}',
           '{"threatModel":"active","graph":"complete","clip":0.1,"levels":65536,"maxWeight":1000,"stageSeconds":45}',
           '{"clip":5,"noiseMultiplier":0,"delta":0.00001}', 'running'),
           ('junk', '{"source":"mr","target":"ct"}', '{}', '{"locaSteps":5}', '{"kind":"fedavg","lr":1}', '{}', '{}', 'running')
         RETURNING id`,
      );
      await old.destroy();
      const db = await openDatabase({ databaseUrl: url, dataDir: '/nonexistent' });
      const feds = db.dataSource.getRepository(FederationEntity);
      const legacy = await feds.findOneByOrFail({ id });
      const config = parseFederationConfig(legacy.config);
      expect(config.model).toEqual({ size: 32, channels: [8, 16], numResBlocks: 1 });
      expect(config.plan).toMatchObject({ localSteps: 20, minSites: 3, stageSeconds: 45 });
      expect(config.strategy).toEqual({
        kind: 'fedadam',
        lr: 0.05,
        beta1: 0.9,
        beta2: 0.99,
        tau: 0.001,
        proxMu: 0.1,
        serverEma: 0,
      });
      expect(config.secagg).toMatchObject({ graph: { kind: 'complete' }, clip: 0.1, maxWeight: 1000 });
      expect(legacy.configVersion).toBe(1);
      // A setting that was accepted but never valid stays visible, and fails to parse with its path.
      const junk = await feds.findOneByOrFail({ name: 'junk' });
      expect(() => parseFederationConfig(junk.config)).toThrow(/plan\.locaSteps: unknown key/);
      const versions = await db.dataSource.query(
        'SELECT federation_id, version FROM federation_config_versions',
      );
      expect(versions).toHaveLength(2);
      await db.close();
    } finally {
      await drop();
    }
  });

  it('names an unreachable server without its password', async () => {
    await expect(
      openDatabase({ databaseUrl: 'postgres://u:secret@127.0.0.1:1/x', dataDir: '/tmp' }),
    ).rejects.toThrow(/cannot connect to postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x/);
  });
});
