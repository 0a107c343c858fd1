import { decodeSafetensors, encodeSafetensors, flattenCanonical } from '@fedsynth/diffusion/weights';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationEntity, MetricEntity } from '../db/entities';
import { freshPostgres } from '../db/testing';
import { startAgent } from '../testing/protocol-agent';
import { type RoundFixture, startRoundFixture } from '../testing/round-fixture';

const D = 1200;

describe('a server moving average of the global model (strategy.serverEma)', () => {
  let f: RoundFixture;
  const initial = Float32Array.from({ length: D }, (_, i) => Math.sin(i));
  const keys = [1, 2, 3].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(40 + i)));

  beforeAll(async () => {
    f = await startRoundFixture({
      db: await freshPostgres(),
      federation: {
        name: 'server-ema',
        secagg: { threatModel: 'active', clip: 0.5, levels: 65536, maxWeight: 1000 },
        plan: { minSites: 3, waitSeconds: 1 },
        strategy: { kind: 'fedavgm', momentum: 0.5, serverEma: 0.9 },
      },
      siteKeys: keys,
      initialModel: encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [D], data: initial }]),
      engine: { maxConcurrentUploads: 3 },
    });
  }, 60_000);

  afterAll(async () => {
    await f?.close();
  });

  const weightsOf = async (sha: string) => flattenCanonical(decodeSafetensors(await f.store.get(sha)).arrays);
  const deltaOf = (k: number, r: number) =>
    Float32Array.from({ length: D }, (_, i) => 0.02 * Math.cos(i * (k + 1) + r));

  async function round(r: number) {
    const sockets = await Promise.all(
      keys.map((kp, k) =>
        startAgent(f.url, kp, deltaOf(k, r), 100, { coordinatorKey: f.ctx.identity.publicKey }),
      ),
    );
    const rec = await f.engine.runRound(f.fedId);
    for (const s of sockets) s.disconnect();
    await new Promise((res) => setTimeout(res, 100));
    expect(rec.stage, rec.error ?? '').toBe('completed');
    return rec;
  }

  it('publishes the average of the initial model and the rounds, scores it, and trains on from the weights', async () => {
    const r0 = await round(0);
    const r1 = await round(1);
    // Sites train round 1 from round 0's checkpoint, not from the published average.
    expect(r1.checkpointIn).toBe(r0.checkpointOut);
    expect(r0.modelOut).toMatch(/^[0-9a-f]{64}$/);
    expect(r0.modelOut).not.toBe(r0.checkpointOut);
    const [w0, w1, e0, e1] = await Promise.all(
      [r0.checkpointOut!, r1.checkpointOut!, r0.modelOut!, r1.modelOut!].map(weightsOf),
    );
    // By hand, with the warm-up min(0.9, (1 + t) / (10 + t)): e0 = 0.1 initial + 0.9 w0, then
    // e1 = (2/11) e0 + (9/11) w1.
    let worst = 0;
    for (let i = 0; i < D; i++) {
      const h0 = 0.1 * initial[i] + 0.9 * w0[i];
      const h1 = (2 / 11) * h0 + (9 / 11) * w1[i];
      worst = Math.max(worst, Math.abs(e0[i] - h0), Math.abs(e1[i] - h1));
    }
    expect(worst).toBeLessThan(1e-6);
    // The weights moved, so the average is a different model from both.
    expect(Math.max(...w1.map((v, i) => Math.abs(v - e1[i])))).toBeGreaterThan(1e-3);
    const fed = await f.ctx.db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: f.fedId });
    expect(fed.currentCheckpoint).toBe(r1.checkpointOut);
    expect(fed.currentModel).toBe(r1.modelOut);
    // The sites scored the published model: its evaluation reports were taken (they name the model).
    const mae = await f.ctx.db.dataSource
      .getRepository(MetricEntity)
      .findBy({ federationId: f.fedId, roundNumber: r1.number, name: 'mae' });
    expect(mae.filter((m) => m.siteId !== null)).toHaveLength(3);
  }, 90_000);

  it('turned off, publishes the checkpoint itself again', async () => {
    await f.ctx.federations.updateConfig(f.fedId, { strategy: { serverEma: 0 } });
    const r2 = await round(2);
    expect(r2.modelOut).toBeNull();
    const fed = await f.ctx.db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: f.fedId });
    expect(fed.currentModel).toBeNull();
    expect(fed.currentCheckpoint).toBe(r2.checkpointOut);
  }, 90_000);
});
