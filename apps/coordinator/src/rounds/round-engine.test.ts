import { decodeSafetensors, encodeSafetensors, flattenCanonical } from '@fedsynth/diffusion/weights';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../checkpoints/checkpoint-store';
import type { Database } from '../db/database';
import { FederationEntity, MetricEntity, RoundEntity, SiteEntity } from '../db/entities';
import { DATABASES } from '../db/testing';
import { CoordinatorContext } from '../http/context';
import { startAgent as start } from '../testing/protocol-agent';
import { type RoundFixture, startRoundFixture } from '../testing/round-fixture';
import { FederationRunner } from './federation-runner';
import { RoundEngine } from './round-engine';

const D = 3000;

for (const [label, open] of DATABASES) {
  describe(`secure FedAvg rounds over socket.io on ${label}`, () => {
    let db: Database;
    let engine: RoundEngine;
    let url: string;
    let fedId: string;
    let store: CheckpointStore;
    let ctx: CoordinatorContext;
    const keys = [1, 2, 3, 4].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(10 + i)));

    let fixture: RoundFixture;

    beforeAll(async () => {
      db = await open();
      fixture = await startRoundFixture({
        db,
        federation: {
          name: 'fedavg',
          secagg: { threatModel: 'active', clip: 0.5, levels: 65536, maxWeight: 1000 },
          plan: { minSites: 3, waitSeconds: 1 },
        },
        siteKeys: keys,
        initialModel: encodeSafetensors([
          {
            name: 'a.weight',
            dtype: 'F32',
            shape: [D - 1000],
            data: Float32Array.from({ length: D - 1000 }, (_, i) => Math.sin(i)),
          },
          { name: 'b.bias', dtype: 'F32', shape: [1000], data: new Float32Array(1000).fill(0.5) },
        ]),
        // Two upload slots for four sites: every round below also exercises the upload queue.
        engine: { maxConcurrentUploads: 2 },
      });
      ({ ctx, engine, store, url, fedId } = fixture);
    }, 60_000);

    afterAll(async () => {
      await fixture?.close();
    });

    const deltaOf = (k: number) => Float32Array.from({ length: D }, (_, i) => 0.01 * Math.cos(i * (k + 1)));

    async function round(weights: number[], dropAt: (string | undefined)[]) {
      const fed = await db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: fedId });
      const before = flattenCanonical(decodeSafetensors(await store.get(fed.currentCheckpoint!)).arrays);
      const sockets = await Promise.all(
        keys.map((kp, k) =>
          start(url, kp, deltaOf(k), weights[k], {
            dropAt: dropAt[k],
            coordinatorKey: ctx.identity.publicKey,
          }),
        ),
      );
      const rec = await engine.runRound(fedId);
      for (const s of sockets) s.disconnect();
      await new Promise((r) => setTimeout(r, 100));
      return { rec, before };
    }

    it('completes a round whose new model is the weighted FedAvg of the deltas within the quantization bound', async () => {
      const weights = [100, 300, 50, 550];
      const { rec, before } = await round(weights, []);
      expect(rec.stage, rec.error ?? '').toBe('completed');
      const after = flattenCanonical(decodeSafetensors(await store.get(rec.checkpointOut!)).arrays);
      const total = weights.reduce((x, y) => x + y, 0);
      // Bound: 3 c |S| / ((Q-1) B) with c = 0.5, |S| = 4, B = total / maxWeight.
      const bound = (3 * 0.5 * 4) / (65535 * (total / 1000)) + 1e-6;
      for (let i = 0; i < D; i += 7) {
        const mean = weights.reduce((acc, w, k) => acc + w * deltaOf(k)[i], 0) / total;
        expect(Math.abs(after[i] - before[i] - mean)).toBeLessThanOrEqual(bound);
      }
      expect(rec.dropouts).toEqual([]);
      expect(Number(rec.bytesIn)).toBe(4 * (D + 1) * 4);
      expect(engine.lastPeakUploads).toBeGreaterThanOrEqual(1);
      expect(engine.lastPeakUploads).toBeLessThanOrEqual(2);
      // Evaluation reports become per-site metrics and a count-weighted global figure.
      const m = await db.dataSource
        .getRepository(MetricEntity)
        .findBy({ federationId: fedId, roundNumber: rec.number, name: 'mae' });
      const global = m.find((x) => x.siteId === null)!;
      expect(m.filter((x) => x.siteId !== null)).toHaveLength(4);
      expect(global.count).toBe(total);
      expect(global.value).toBeCloseTo(weights.reduce((x, w) => x + (50 + w / 10) * w, 0) / total, 6);
      // Each site's reported epsilon is kept; the global figure is the largest (the weakest guarantee).
      const eps = await db.dataSource
        .getRepository(MetricEntity)
        .findBy({ federationId: fedId, roundNumber: rec.number, name: 'epsilon' });
      expect(
        eps
          .filter((x) => x.siteId !== null)
          .map((x) => x.value)
          .sort((a, b) => a - b),
      ).toEqual([0.5, 1, 3, 5.5]);
      expect(eps.find((x) => x.siteId === null)).toMatchObject({ value: 5.5, count: 4 });
      // jsonb does not keep key order: compare the stages, then check the times are in stage order.
      const stages = [
        'selecting',
        'advertise-keys',
        'share-keys',
        'masked-input',
        'consistency-check',
        'unmask',
        'applying',
        'evaluating',
        'completed',
      ];
      expect(Object.keys(rec.stageTimes).sort()).toEqual([...stages].sort());
      const times = stages.map((st) => Date.parse(rec.stageTimes[st]));
      for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
    }, 60_000);

    it('completes when a site drops after sharing keys, and records where it dropped', async () => {
      const { rec } = await round([1, 1, 1, 1], [undefined, 'masked-input', undefined, undefined]);
      expect(rec.stage, rec.error ?? '').toBe('completed');
      expect(rec.dropouts).toHaveLength(1);
      expect(rec.dropouts[0].stage).toBe('masked-input');
    }, 60_000);

    it('fails with its reason when too few survive, keeps the model, and the next round completes', async () => {
      const fedBefore = await db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: fedId });
      const { rec } = await round([1, 1, 1, 1], ['share-keys', 'masked-input', undefined, undefined]);
      expect(rec.stage).toBe('failed');
      expect(rec.error).toMatch(/the threshold is 3/);
      const fedAfter = await db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: fedId });
      expect(fedAfter.currentCheckpoint).toBe(fedBefore.currentCheckpoint);
      const next = await round([1, 2, 3, 4], []);
      expect(next.rec.stage).toBe('completed');
      const all = await db.dataSource
        .getRepository(RoundEntity)
        .find({ where: { federationId: fedId }, order: { number: 'ASC' } });
      expect(all.map((r) => r.stage)).toEqual(['completed', 'completed', 'failed', 'completed']);
    }, 90_000);

    it('sites follow only round starts signed by the coordinator key they pinned', async () => {
      const forged = nacl.sign.keyPair().publicKey;
      const sockets = await Promise.all(
        keys.map((kp, k) =>
          start(url, kp, deltaOf(k), 1, { coordinatorKey: k === 0 ? forged : ctx.identity.publicKey }),
        ),
      );
      const rec = await engine.runRound(fedId);
      for (const s of sockets) s.disconnect();
      await new Promise((r) => setTimeout(r, 100));
      expect(rec.stage, rec.error ?? '').toBe('completed');
      const first = await db.dataSource.getRepository(SiteEntity).findOneByOrFail({ name: 'site-1' });
      expect(rec.dropouts).toEqual([{ siteId: first.id, stage: 'advertise-keys' }]);
    }, 60_000);

    it('after a restart marks the unfinished round aborted and continues from the last checkpoint', async () => {
      const rounds = db.dataSource.getRepository(RoundEntity);
      const fed = await db.dataSource.getRepository(FederationEntity).findOneByOrFail({ id: fedId });
      // What a coordinator killed during masked input leaves behind.
      const lastNumber = (await rounds.maximum('number', { federationId: fedId })) ?? -1;
      await rounds.save({
        federationId: fedId,
        number: lastNumber + 1,
        stage: 'masked-input',
        checkpointIn: fed.currentCheckpoint!,
        startedAt: new Date(),
      });
      expect(await engine.recover()).toBe(1);
      const aborted = await rounds.findOneByOrFail({ federationId: fedId, number: lastNumber + 1 });
      expect(aborted.stage).toBe('aborted');
      expect(aborted.error).toMatch(/restarted while the round was in masked-input/);
      // The runner starts the next round from the same checkpoint, and earlier records are intact.
      const runner = new FederationRunner(new CoordinatorContext(db, 'test'), engine, {
        intervalMs: 60_000,
        retrySeconds: 0,
      });
      const sockets = await Promise.all(keys.map((kp, k) => start(url, kp, deltaOf(k), 1)));
      await runner.tick();
      await runner.idle();
      for (const s of sockets) s.disconnect();
      const all = await rounds.find({ where: { federationId: fedId }, order: { number: 'ASC' } });
      expect(all.map((r) => r.stage)).toEqual([
        'completed',
        'completed',
        'failed',
        'completed',
        'completed',
        'aborted',
        'completed',
      ]);
      expect(all.at(-1)!.checkpointIn).toBe(fed.currentCheckpoint);
    }, 90_000);

    it('waits for sites, then records a round with too few of them as failed', async () => {
      const t = Date.now();
      const rec = await engine.runRound(fedId);
      expect(rec.stage).toBe('failed');
      expect(rec.error).toMatch(/too few sites online: 0 of the 3 needed after waiting 1 s/);
      expect(Date.now() - t).toBeGreaterThanOrEqual(900);
    }, 30_000);

    it('stops waiting for sites when the federation is paused, and SIGTERM-style abort records the round', async () => {
      const feds = db.dataSource.getRepository(FederationEntity);
      await ctx.federations.updateConfig(fedId, { plan: { minSites: 3, waitSeconds: 60 } });
      const t = Date.now();
      const pending = engine.runRound(fedId);
      await new Promise((r) => setTimeout(r, 300));
      await feds.update({ id: fedId }, { status: 'paused' });
      const rec = await pending;
      expect(rec.stage).toBe('failed');
      expect(rec.error).toMatch(/the federation was paused while the round waited for sites/);
      expect(Date.now() - t).toBeLessThan(10_000);
      // A shutdown marks the round in progress as aborted with its reason, at once.
      await feds.update({ id: fedId }, { status: 'running' });
      const second = engine.runRound(fedId);
      await new Promise((r) => setTimeout(r, 300));
      await engine.abortActive('the coordinator was stopped during the round');
      const aborted = await db.dataSource
        .getRepository(RoundEntity)
        .findOneByOrFail({ federationId: fedId, number: rec.number + 1 });
      expect(aborted.stage).toBe('aborted');
      expect(aborted.error).toBe('the coordinator was stopped during the round');
      await feds.update({ id: fedId }, { status: 'paused' });
      await second;
      const after = await db.dataSource.getRepository(RoundEntity).findOneByOrFail({ id: aborted.id });
      expect(after.stage).toBe('aborted');
      await feds.update({ id: fedId }, { status: 'running' });
      await ctx.federations.updateConfig(fedId, { plan: { minSites: 3, waitSeconds: 1 } });
    }, 30_000);

    it('draws ceil(fraction x online) sites per round', async () => {
      await ctx.federations.updateConfig(fedId, { plan: { minSites: 3, waitSeconds: 1, fraction: 0.5 } });
      const sockets = await Promise.all(keys.map((kp, k) => start(url, kp, deltaOf(k), 1)));
      const rec = await engine.runRound(fedId);
      for (const s of sockets) s.disconnect();
      await new Promise((r) => setTimeout(r, 100));
      // ceil(0.5 x 4) = 2 is below minSites, so 3 take part.
      expect(rec.stage, rec.error ?? '').toBe('completed');
      expect(rec.participants).toHaveLength(3);
    }, 60_000);
  });
}
