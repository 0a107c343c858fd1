import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTokenService } from './auth/api-tokens';
import type { Database } from './db/database';
import { ApiTokenEntity } from './db/entities';
import { DATABASES } from './db/testing';
import { ErrorCode } from './errors/coordinator-error';
import { FederationService, nextStatus, TRANSITIONS } from './federations/federation-service';
import { EnrollmentService, enrollmentPayload } from './sites/enrollment-service';

describe('federation status transitions (pure)', () => {
  it('allows exactly the listed transitions and refuses every other one', () => {
    const statuses = ['created', 'running', 'paused', 'stopped'] as const;
    for (const action of Object.keys(TRANSITIONS) as (keyof typeof TRANSITIONS)[]) {
      for (const s of statuses) {
        if (TRANSITIONS[action].from.includes(s)) expect(nextStatus(s, action)).toBe(TRANSITIONS[action].to);
        else expect(() => nextStatus(s, action)).toThrow(`cannot ${action} a federation that is ${s}`);
      }
    }
  });
});

for (const [label, open] of DATABASES) {
  describe(`coordinator services on ${label}`, () => {
    let db: Database;
    beforeAll(async () => {
      db = await open();
    }, 60_000);
    afterAll(async () => {
      await db?.close();
    });

    it('creates federations with defaults, refuses duplicates and walks the lifecycle', async () => {
      const svc = new FederationService(db.dataSource);
      const f = await svc.create({ name: 'mr-ct', plan: { localSteps: 10 } });
      expect(svc.configOf(f).plan).toMatchObject({ localSteps: 10, batchSize: 8 });
      expect(svc.configOf(f).task).toEqual({ sources: ['mr'], target: 'ct', context: 0 });
      expect(f.configVersion).toBe(1);
      // Settings that used to be accepted and fail late are refused at creation, naming the path.
      await expect(svc.create({ name: 'bad', plan: { locaSteps: 5 } })).rejects.toMatchObject({
        code: ErrorCode.INVALID_INPUT,
        message: 'plan.locaSteps: unknown key',
      });
      await expect(svc.create({ name: 'bad', strategy: { kind: 'fedadamx' } })).rejects.toMatchObject({
        code: ErrorCode.INVALID_INPUT,
      });
      // Changed between rounds: a new version, kept with the earlier one.
      const v2 = await svc.updateConfig(f.id, { plan: { lr: 1e-3 } });
      expect(v2.configVersion).toBe(2);
      expect(svc.configOf(v2).plan).toMatchObject({ localSteps: 10, lr: 1e-3 });
      expect((await svc.versions(f.id)).map((v) => v.version)).toEqual([1, 2]);
      await expect(svc.updateConfig(f.id, { plan: { minSites: 1 } })).rejects.toMatchObject({
        code: ErrorCode.INVALID_INPUT,
      });
      await expect(svc.create({ name: 'mr-ct' })).rejects.toMatchObject({ code: ErrorCode.NAME_TAKEN });
      await expect(svc.create({ name: '../x' })).rejects.toMatchObject({ code: ErrorCode.INVALID_INPUT });
      expect((await svc.transition(f.id, 'start')).status).toBe('running');
      expect((await svc.transition('mr-ct', 'pause')).status).toBe('paused');
      await expect(svc.transition(f.id, 'pause')).rejects.toMatchObject({
        code: ErrorCode.ILLEGAL_TRANSITION,
      });
      expect((await svc.transition(f.id, 'resume')).status).toBe('running');
      expect((await svc.transition(f.id, 'stop')).status).toBe('stopped');
      await expect(svc.get('nope')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    });

    it('issues API tokens once, stores only their hash, and refuses revoked ones', async () => {
      const repo = db.dataSource.getRepository(ApiTokenEntity);
      const svc = new ApiTokenService(repo);
      const { id, token } = await svc.create('researcher', 'r1');
      expect(await svc.verify(token)).toEqual({ id, role: 'researcher', label: 'r1', federations: null });
      const rows = await repo.find();
      expect(rows.some((r) => Buffer.from(r.tokenHash).toString('utf8').includes(token))).toBe(false);
      await svc.revoke(id);
      await expect(svc.verify(token)).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
      await expect(svc.verify(undefined)).rejects.toThrow(/Bearer/);
      expect(await svc.hasAdmin()).toBe(false);
      await svc.create('admin');
      expect(await svc.hasAdmin()).toBe(true);
      // A token provided by a deployment secret works as given; a weak one is refused.
      const given = `fsk_${'a1'.repeat(20)}`;
      const installed = await svc.create('admin', 'secret', { given });
      expect(await svc.verify(given)).toEqual({
        id: installed.id,
        role: 'admin',
        label: 'secret',
        federations: null,
      });
      await expect(svc.create('admin', 'weak', { given: 'fsk_short' })).rejects.toThrow(/at least 32/);
      await expect(
        svc.create('admin', 'weak', { given: 'admin-password-1234567890-1234567890' }),
      ).rejects.toThrow(/fsk_/);
    });

    it('enrolls a site once with a valid token and proof of key possession, then approves and revokes it', async () => {
      const fed = await new FederationService(db.dataSource).create({
        name: 'enroll-test',
      });
      const svc = new EnrollmentService(db.dataSource);
      const { token } = await svc.createToken(fed.id, 'hospital-a');
      const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
      const sign = (t: string, k = kp) => nacl.sign.detached(enrollmentPayload(t, k.publicKey), k.secretKey);
      const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(4));
      await expect(
        svc.enroll({ token, publicKey: kp.publicKey, signature: sign(token, other) }),
      ).rejects.toMatchObject({ code: ErrorCode.BAD_SIGNATURE });
      await expect(
        svc.enroll({ token: 'fse_unknown', publicKey: kp.publicKey, signature: sign('fse_unknown') }),
      ).rejects.toMatchObject({ code: ErrorCode.TOKEN_INVALID });
      const site = await svc.enroll({ token, publicKey: kp.publicKey, signature: sign(token) });
      expect(site.status).toBe('pending');
      expect(site.name).toBe('hospital-a');
      await expect(
        svc.enroll({ token, publicKey: other.publicKey, signature: sign(token, other) }),
      ).rejects.toMatchObject({ code: ErrorCode.TOKEN_USED });
      const t2 = await svc.createToken(fed.id, 'hospital-b');
      await expect(
        svc.enroll({ token: t2.token, publicKey: kp.publicKey, signature: sign(t2.token) }),
      ).rejects.toMatchObject({ code: ErrorCode.KEY_ENROLLED });
      const t3 = await svc.createToken(fed.id, 'hospital-c', 1);
      await expect(
        svc.enroll({
          token: t3.token,
          publicKey: other.publicKey,
          signature: sign(t3.token, other),
          now: new Date(Date.now() + 2 * 3600_000),
        }),
      ).rejects.toMatchObject({ code: ErrorCode.TOKEN_EXPIRED });
      // A refused enrollment left nothing behind: the expired token is still unused, one site exists.
      expect(await svc.list(fed.id)).toHaveLength(1);
      expect((await svc.setStatus(site.id, 'approved')).status).toBe('approved');
      expect((await svc.setStatus(site.id, 'revoked')).status).toBe('revoked');
      await expect(svc.setStatus(site.id, 'approved')).rejects.toMatchObject({
        code: ErrorCode.ILLEGAL_TRANSITION,
      });
    });
  });
}
