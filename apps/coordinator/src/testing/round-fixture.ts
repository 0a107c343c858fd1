import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import type nacl from 'tweetnacl';
import { CheckpointStore } from '../checkpoints/checkpoint-store';
import type { Database } from '../db/database';
import { CheckpointEntity, FederationEntity, SiteEntity } from '../db/entities';
import { AgentGateway } from '../gateway/agent-gateway';
import { createHttpApp } from '../http/app';
import { CoordinatorContext } from '../http/context';
import type { EngineOptions } from '../rounds/federation-round';
import { RoundEngine } from '../rounds/round-engine';

/** A coordinator's round machinery on a real database and socket.io, for round tests. */
export interface RoundFixture {
  ctx: CoordinatorContext;
  app: INestApplication;
  gateway: AgentGateway;
  engine: RoundEngine;
  store: CheckpointStore;
  /** The agents' socket.io address. */
  url: string;
  fedId: string;
  /** Stops the gateway and the app, and closes the database. */
  close(): Promise<void>;
}

/**
 * A running federation with approved sites of the given keys (site-1, site-2, ...) and the given
 * initial model, served over socket.io on a free port, with a round engine; nothing else runs
 * rounds, so a test drives them with engine.runRound.
 */
export async function startRoundFixture(opts: {
  db: Database;
  federation: { name: string } & Record<string, unknown>;
  siteKeys: nacl.SignKeyPair[];
  initialModel: Uint8Array;
  engine?: Partial<EngineOptions>;
}): Promise<RoundFixture> {
  const { db } = opts;
  const ctx = new CoordinatorContext(db, 'test');
  const fed = await ctx.federations.create(opts.federation);
  for (const [i, kp] of opts.siteKeys.entries())
    await db.dataSource.getRepository(SiteEntity).save({
      federationId: fed.id,
      name: `site-${i + 1}`,
      publicKey: Buffer.from(kp.publicKey),
      status: 'approved',
    });
  const store = new CheckpointStore(
    mkdtempSync(join(tmpdir(), 'fedsynth-ckpt-')),
    db.dataSource.getRepository(CheckpointEntity),
  );
  const sha = await store.put(opts.initialModel);
  await db.dataSource
    .getRepository(FederationEntity)
    .update({ id: fed.id }, { currentCheckpoint: sha, status: 'running' });
  const app = await createHttpApp(ctx);
  const gateway = new AgentGateway(app.getHttpServer(), ctx);
  const engine = new RoundEngine(ctx, gateway, store, {
    stageTimeoutMs: 3000,
    trainTimeoutMs: 5000,
    ...opts.engine,
  });
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/agents`;
  return {
    ctx,
    app,
    gateway,
    engine,
    store,
    url,
    fedId: fed.id,
    close: async () => {
      await gateway.close();
      await app.close();
      await db.close();
    },
  };
}
