import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../db/database';
import { ApiTokenEntity } from '../db/entities';
import { freshPostgres } from '../db/testing';
import { ErrorCode } from '../errors/coordinator-error';
import { FederationService } from '../federations/federation-service';
import { ApiTokenService, LAST_USED_INTERVAL_MS } from './api-tokens';
import { TokenAdmin } from './token-admin';

let db: Database;
beforeAll(async () => {
  db = await freshPostgres();
}, 60_000);
afterAll(async () => {
  await db?.close();
});

/** A clock the test moves by hand. */
function clock(start: string) {
  let t = Date.parse(start);
  return {
    now: () => new Date(t),
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('ApiTokenService on PostgreSQL', () => {
  it('refuses a token from its expiry on, naming the time, and never before', async () => {
    const c = clock('2030-01-01T00:00:00Z');
    const sut = new ApiTokenService(db.dataSource.getRepository(ApiTokenEntity), c.now);
    const { token } = await sut.create('researcher', 'short-lived', {
      expiresAt: new Date('2030-01-01T02:00:00Z'),
    });
    await expect(sut.verify(token)).resolves.toMatchObject({ role: 'researcher', label: 'short-lived' });
    c.advance(2 * 3600_000 - 1);
    await expect(sut.verify(token)).resolves.toMatchObject({ role: 'researcher' });
    c.advance(1);
    const err = await sut.verify(token).catch((e) => e);
    expect(err).toMatchObject({ code: ErrorCode.TOKEN_EXPIRED, httpStatus: 401 });
    expect(err.message).toContain('2030-01-01T02:00:00.000Z');
    // An expiry in the past is refused at creation.
    await expect(
      sut.create('admin', 'x', { expiresAt: new Date('2029-12-31T00:00:00Z') }),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_INPUT });
  });

  it('records use at most once a minute, not on every request', async () => {
    const c = clock('2030-02-01T00:00:00Z');
    const repo = db.dataSource.getRepository(ApiTokenEntity);
    const sut = new ApiTokenService(repo, c.now);
    const { id, token } = await sut.create('researcher', 'busy dashboard');
    const lastUsed = async () => (await repo.findOneByOrFail({ id })).lastUsedAt?.toISOString();
    expect(await lastUsed()).toBeUndefined();
    await sut.verify(token);
    expect(await lastUsed()).toBe('2030-02-01T00:00:00.000Z');
    c.advance(30_000);
    await Promise.all([sut.verify(token), sut.verify(token), sut.verify(token)]);
    expect(await lastUsed()).toBe('2030-02-01T00:00:00.000Z');
    c.advance(LAST_USED_INTERVAL_MS);
    await sut.verify(token);
    expect(await lastUsed()).toBe('2030-02-01T00:01:30.000Z');
  });

  it('lists tokens without secrets or hashes, revokes once, and keeps scopes', async () => {
    const repo = db.dataSource.getRepository(ApiTokenEntity);
    const federations = new FederationService(db.dataSource);
    const a = await federations.create({ name: 'scope-a' });
    const tokens = new ApiTokenService(repo);
    const sut = new TokenAdmin(tokens, federations);
    const made = await sut.create({ role: 'researcher', label: 'for a', federations: ['scope-a', a.id] });
    expect(made.federations).toEqual(['scope-a']);
    await expect(tokens.verify(made.token)).resolves.toMatchObject({ federations: [a.id] });
    await expect(sut.create({ role: 'researcher', federations: ['nope'] })).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
      message: expect.stringContaining('"nope"'),
    });
    await expect(sut.create({ role: 'researcher', expiresInHours: 8760 * 5 + 1 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_INPUT,
    });
    const list = await sut.list();
    const text = JSON.stringify(list);
    expect(text).not.toContain(made.token);
    expect(text).not.toMatch(/hash/i);
    const hash = (await repo.findOneByOrFail({ id: made.id })).tokenHash;
    expect(text).not.toContain(Buffer.from(hash).toString('hex'));
    expect(text).not.toContain(Buffer.from(hash).toString('base64'));
    expect(list.find((t) => t.id === made.id)).toMatchObject({ label: 'for a', federations: ['scope-a'] });
    expect((await sut.revoke(made.id)).revokedAt).toBeInstanceOf(Date);
    await expect(sut.revoke(made.id)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    await expect(sut.revoke('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });
    await expect(sut.revoke("1' OR '1'='1")).rejects.toMatchObject({ code: ErrorCode.INVALID_INPUT });
    await expect(tokens.verify(made.token)).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
  });

  it('counts only unrevoked, unexpired admin tokens for every federation as a usable admin', async () => {
    const fresh = await freshPostgres();
    try {
      const c = clock('2030-03-01T00:00:00Z');
      const repo = fresh.dataSource.getRepository(ApiTokenEntity);
      const sut = new ApiTokenService(repo, c.now);
      const fed = await new FederationService(fresh.dataSource).create({
        name: 'only',
      });
      await sut.create('admin', 'limited', { federationIds: [fed.id] });
      await sut.create('researcher');
      expect(await sut.hasAdmin()).toBe(false);
      await sut.create('admin', 'brief', { expiresAt: new Date('2030-03-01T01:00:00Z') });
      expect(await sut.hasAdmin()).toBe(true);
      c.advance(3600_000);
      expect(await sut.hasAdmin()).toBe(false);
    } finally {
      await fresh.close();
    }
  });
});
