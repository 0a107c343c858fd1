import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors } from '@fedsynth/diffusion/weights';
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../db/database';
import type { FederationEntity } from '../db/entities';
import { freshPostgres } from '../db/testing';
import { log as logger } from '../logging/logger';
import { apiCall } from '../testing/api-call';
import { createHttpApp } from './app';
import { DEFAULT_BOUNDARY } from './boundary-settings';
import { CoordinatorContext } from './context';

/**
 * Token scopes, token management and the audit trail through a live HTTP app on PostgreSQL. The
 * app believes X-Forwarded-For from loopback, so a test can speak from any client address.
 */
let db: Database;
let ctx: CoordinatorContext;
let app: INestApplication;
let base: string;
let admin: string;
let researcherA: string;
let researcherAId: string;
let adminA: string;
let adminAId: string;
let fedA: FederationEntity;
let fedB: FederationEntity;
let shaA: string;
let shaB: string;
let shaRoundA: string;
let siteA: string;
let siteB: string;
const secrets: string[] = [];

const model = (v: number) =>
  encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: Float32Array.of(v, v + 1) }]);

beforeAll(async () => {
  db = await freshPostgres();
  ctx = new CoordinatorContext(db, '0.1.0-test', mkdtempSync(join(tmpdir(), 'fedsynth-authz-')), undefined, {
    ...DEFAULT_BOUNDARY,
    trustProxy: 'loopback',
  });
  admin = (await ctx.tokens.create('admin', 'root')).token;
  fedA = await ctx.federations.create({ name: 'fed-a' });
  fedB = await ctx.federations.create({ name: 'fed-b' });
  const rA = await ctx.tokenAdmin.create({
    role: 'researcher',
    label: 'reader of a',
    federations: ['fed-a'],
  });
  researcherA = rA.token;
  researcherAId = rA.id;
  const aA = await ctx.tokenAdmin.create({ role: 'admin', label: 'admin of a', federations: [fedA.id] });
  adminA = aA.token;
  adminAId = aA.id;
  secrets.push(admin, researcherA, adminA);
  shaA = await ctx.checkpoints.put(model(1), { federationId: fedA.id });
  await ctx.federations.setCheckpoint(fedA.id, shaA);
  shaB = await ctx.checkpoints.put(model(2), { federationId: fedB.id });
  await ctx.federations.setCheckpoint(fedB.id, shaB);
  // A model stored without a federation, known to fed-a only as a round's input.
  shaRoundA = await ctx.checkpoints.put(model(3));
  await db.dataSource.query(
    `INSERT INTO rounds (federation_id, number, stage, checkpoint_in, started_at) VALUES ($1, 1, 'failed', $2, now())`,
    [fedA.id, shaRoundA],
  );
  const site = async (fed: string, name: string, key: number) =>
    (
      (await db.dataSource.query(
        `INSERT INTO sites (federation_id, name, public_key) VALUES ($1, $2, $3) RETURNING id`,
        [fed, name, Buffer.alloc(32, key)],
      )) as { id: string }[]
    )[0].id;
  siteA = await site(fedA.id, 'hospital-a', 1);
  siteB = await site(fedB.id, 'hospital-b', 2);
  app = await createHttpApp(ctx);
  await app.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
}, 60_000);

afterAll(async () => {
  await app?.close();
  await db?.close();
});

const call = (
  method: string,
  path: string,
  token?: string,
  body?: unknown,
  headers: Record<string, string> = {},
) => apiCall(base, method, path, { token, body, headers });

interface AuditEvent {
  id: string;
  action: string;
  target: string | null;
  status: number;
  address: string;
  actorTokenId: string | null;
  actorLabel: string | null;
  detail: Record<string, unknown> | null;
}

/** Polls the trail (as the unlimited admin) until an event matches: events are written after the response. */
async function event(match: (e: AuditEvent) => boolean): Promise<AuditEvent> {
  for (let i = 0; i < 50; i++) {
    const rows = (await ctx.audit.list({ limit: 500 })) as unknown as AuditEvent[];
    const hit = rows.find(match);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no matching audit event');
}

describe('token scopes', () => {
  it('a researcher limited to one federation sees only it and is refused the other everywhere', async () => {
    const list = await call('GET', '/api/federations', researcherA);
    expect(list.json.map((f) => f.name)).toEqual(['fed-a']);
    expect((await call('GET', '/api/federations', admin)).json).toHaveLength(2);
    expect((await call('GET', `/api/federations/${fedA.id}/rounds`, researcherA)).status).toBe(200);
    for (const path of [
      `/api/federations/${fedB.id}`,
      '/api/federations/fed-b',
      `/api/federations/${fedB.id}/rounds`,
      `/api/federations/${fedB.id}/metrics`,
      `/api/federations/fed-b/metrics?format=csv`,
      `/api/federations/${fedB.id}/sample`,
      `/api/federations/${fedA.id}/sample?checkpoint=${shaB}`,
      `/api/checkpoints/${shaB}`,
      // Whether a federation or model exists is not revealed either.
      '/api/federations/no-such-federation',
      `/api/checkpoints/${'0'.repeat(64)}`,
    ]) {
      const r = await call('GET', path, researcherA);
      expect(r.status, path).toBe(403);
      expect(r.json, path).toMatchObject({
        code: 'FORBIDDEN',
        message: 'this token is limited to federations fed-a',
      });
    }
    // The federation's models: its current one, and a round's input stored without a federation.
    for (const sha of [shaA, shaRoundA]) {
      const r = await fetch(`${base}/api/checkpoints/${sha}`, {
        headers: { authorization: `Bearer ${researcherA}` },
      });
      expect(r.status, sha).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).length).toBeGreaterThan(8);
    }
    // The unlimited admin reaches everything.
    expect((await call('GET', `/api/checkpoints/${shaB}`, admin)).status).toBe(200);
  });

  it('an admin limited to one federation runs it but cannot manage tokens, create federations or touch others', async () => {
    const tokens = await call('POST', '/api/tokens', adminA, { role: 'researcher' });
    expect(tokens.status).toBe(403);
    expect(tokens.json.message).toBe(
      'managing API tokens needs a token for every federation; this token is limited to federations fed-a',
    );
    expect((await call('GET', '/api/tokens', adminA)).status).toBe(403);
    expect((await call('POST', `/api/tokens/${researcherAId}/revoke`, adminA)).status).toBe(403);
    const create = await call('POST', '/api/federations', adminA, { name: 'fed-c' });
    expect(create.status).toBe(403);
    expect(create.json.message).toMatch(/creating a federation needs a token for every federation/);
    expect((await call('POST', `/api/federations/${fedB.id}/start`, adminA)).status).toBe(403);
    expect(
      (await call('POST', `/api/federations/${fedB.id}/enrollment-tokens`, adminA, { siteName: 'x' })).status,
    ).toBe(403);
    expect((await call('GET', `/api/federations/${fedB.id}/sites`, adminA)).status).toBe(403);
    expect((await call('POST', `/api/sites/${siteB}/approve`, adminA)).status).toBe(403);
    expect((await call('POST', `/api/sites/${siteB}/revoke`, adminA)).status).toBe(403);
    const put = await fetch(`${base}/api/federations/${fedB.id}/checkpoint`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminA}`, 'content-type': 'application/octet-stream' },
      body: model(9),
    });
    expect(put.status).toBe(403);
    expect((await call('GET', `/api/federations/${fedB.id}/metrics?perSite=1`, adminA)).status).toBe(403);
    // Its own federation: everything an admin does.
    expect((await call('POST', '/api/federations/fed-a/start', adminA)).json.status).toBe('running');
    expect((await call('POST', `/api/sites/${siteA}/approve`, adminA)).json.status).toBe('approved');
    expect((await call('GET', `/api/federations/${fedA.id}/sites`, adminA)).json).toHaveLength(1);
    expect((await call('GET', `/api/federations/${fedA.id}/metrics?perSite=1`, adminA)).status).toBe(200);
    // Nothing changed in fed-b.
    expect((await ctx.federations.get(fedB.id)).status).toBe('created');
    expect((await db.dataSource.query('SELECT status FROM sites WHERE id = $1', [siteB]))[0].status).toBe(
      'pending',
    );
  });
});

describe('token management over REST', () => {
  it('documents the token and audit routes in the OpenAPI description', async () => {
    const spec = await call('GET', '/api/docs/openapi.json');
    expect(Object.keys(spec.json.paths as object)).toEqual(
      expect.arrayContaining(['/api/tokens', '/api/tokens/{id}/revoke', '/api/audit']),
    );
  });

  it('creates a token shown once, lists without secrets, revokes it, and refuses it afterwards', async () => {
    const made = await call('POST', '/api/tokens', admin, {
      role: 'researcher',
      label: 'temporary',
      expiresInHours: 2,
      federations: ['fed-b'],
    });
    expect(made.status).toBe(201);
    const token = made.json.token as string;
    secrets.push(token);
    expect(token).toMatch(/^fsk_/);
    expect(made.json).toMatchObject({ role: 'researcher', label: 'temporary', federations: ['fed-b'] });
    expect(Date.parse(made.json.expiresAt as string) - Date.now()).toBeGreaterThan(7100_000);
    expect((await call('GET', '/api/federations', token)).json.map((f) => f.name)).toEqual(['fed-b']);
    const list = await call('GET', '/api/tokens', admin);
    expect(list.status).toBe(200);
    for (const s of secrets) expect(list.text).not.toContain(s);
    expect(list.text).not.toMatch(/hash/i);
    const row = list.json.find((t) => t.id === made.json.id);
    expect(row).toMatchObject({
      role: 'researcher',
      label: 'temporary',
      federations: ['fed-b'],
      revokedAt: null,
    });
    expect(Object.keys(row ?? {}).sort()).toEqual(
      [
        'createdAt',
        'createdBy',
        'expiresAt',
        'federations',
        'id',
        'label',
        'lastUsedAt',
        'revokedAt',
        'role',
      ].sort(),
    );
    expect(row?.lastUsedAt).not.toBeNull();
    const revoked = await call('POST', `/api/tokens/${made.json.id}/revoke`, admin);
    expect(revoked.status).toBe(201);
    expect(revoked.json.revokedAt).toEqual(expect.any(String));
    const after = await call('GET', '/api/federations', token);
    expect(after.status).toBe(401);
    expect((await call('POST', `/api/tokens/${made.json.id}/revoke`, admin)).status).toBe(404);
    expect((await call('POST', '/api/tokens/not-a-uuid/revoke', admin)).status).toBe(400);
  });

  it('names an unknown federation and refuses expiries out of range', async () => {
    const unknown = await call('POST', '/api/tokens', admin, { role: 'researcher', federations: ['fed-z'] });
    expect(unknown.status).toBe(404);
    expect(unknown.json.message).toContain('"fed-z"');
    for (const expiresInHours of [0, -1, 8760 * 5 + 1])
      expect((await call('POST', '/api/tokens', admin, { role: 'researcher', expiresInHours })).status).toBe(
        400,
      );
    expect((await call('POST', '/api/tokens', admin, { role: 'researcher', federations: [] })).status).toBe(
      400,
    );
    expect((await call('POST', '/api/tokens', researcherA, { role: 'admin' })).status).toBe(403);
  });

  it('refuses an expired token with 401 naming its expiry', async () => {
    const { id, token } = await ctx.tokens.create('researcher', 'expiring', {
      expiresAt: new Date(Date.now() + 3600_000),
    });
    expect((await call('GET', '/api/me', token)).status).toBe(200);
    await db.dataSource.query(`UPDATE api_tokens SET expires_at = '2001-02-03T04:05:06Z' WHERE id = $1`, [
      id,
    ]);
    const r = await call('GET', '/api/me', token);
    expect(r.status).toBe(401);
    expect(r.json).toMatchObject({
      code: 'TOKEN_EXPIRED',
      message: expect.stringContaining('2001-02-03T04:05:06'),
    });
  });
});

describe('audit trail', () => {
  it('records actions, downloads, refusals and failed authentications, with addresses and no secrets', async () => {
    const from = (address: string) => ({ 'x-forwarded-for': address });
    expect(
      (await call('POST', `/api/federations/${fedB.id}/start`, admin, undefined, from('198.51.100.1')))
        .status,
    ).toBe(201);
    const made = await call('POST', '/api/tokens', admin, { role: 'researcher', label: 'audited' });
    secrets.push(made.json.token as string);
    const dl = await fetch(`${base}/api/checkpoints/${shaA}`, {
      headers: { authorization: `Bearer ${researcherA}`, ...from('198.51.100.2') },
    });
    expect(dl.status).toBe(200);
    expect(
      (await call('GET', '/api/me', 'fsk_not-a-real-token', undefined, from('203.0.113.9'))).status,
    ).toBe(401);
    expect((await call('POST', '/api/federations', adminA, { name: 'fed-d' })).status).toBe(403);
    expect((await call('GET', '/api/audit', researcherA)).status).toBe(403);

    const start = await event((e) => e.action === 'federation.start' && e.target === fedB.id);
    expect(start).toMatchObject({ status: 201, address: '198.51.100.1', actorLabel: 'root' });
    const created = await event((e) => e.action === 'token.create' && e.target === made.json.id);
    expect(created).toMatchObject({ status: 201, detail: { role: 'researcher', label: 'audited' } });
    const download = await event((e) => e.action === 'model.download' && e.target === shaA);
    expect(download).toMatchObject({
      status: 200,
      address: '198.51.100.2',
      actorTokenId: researcherAId,
      detail: { federationId: fedA.id },
    });
    const failed = await event((e) => e.action === 'auth.failed' && e.address === '203.0.113.9');
    expect(failed).toMatchObject({ status: 401, actorTokenId: null, detail: { tokenPresented: true } });
    const refused = await event((e) => e.action === 'federation.create' && e.status === 403);
    expect(refused.actorTokenId).toBe(adminAId);
    await event((e) => e.action === 'audit.read' && e.status === 403 && e.actorTokenId === researcherAId);
    // No token, nor anything of one, in any recorded event.
    const all = JSON.stringify(await ctx.audit.list({ limit: 500 }));
    for (const s of secrets) {
      expect(all).not.toContain(s);
      expect(all).not.toContain(s.slice(4, 20));
    }
    expect(all).not.toContain('fsk_not-a-real-token');
  });

  it('serves the trail to admins, newest first and paged; a limited admin sees its federations and its own', async () => {
    const page = await call('GET', '/api/audit?limit=3', admin);
    expect(page.status).toBe(200);
    expect(page.json).toHaveLength(3);
    const ids = page.json.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const next = await call('GET', `/api/audit?limit=2&before=${ids[2]}`, admin);
    expect(next.json.every((e) => Number(e.id) < ids[2])).toBe(true);
    expect((await call('GET', '/api/audit?limit=501', admin)).status).toBe(400);
    expect((await call('GET', '/api/audit?before=x', admin)).status).toBe(400);
    await event((e) => e.action === 'audit.read' && e.status === 200);

    const limited = await call('GET', '/api/audit?limit=500', adminA);
    expect(limited.status).toBe(200);
    const events = limited.json as unknown as AuditEvent[];
    expect(events.length).toBeGreaterThan(0);
    for (const e of events)
      expect(
        e.actorTokenId === adminAId || e.target === fedA.id || e.detail?.federationId === fedA.id,
        JSON.stringify(e),
      ).toBe(true);
    // fed-a's events by others are there (the researcher's download), fed-b's are not.
    expect(events.some((e) => e.action === 'model.download' && e.actorTokenId === researcherAId)).toBe(true);
    expect(events.some((e) => e.target === fedB.id && e.actorTokenId !== adminAId)).toBe(false);
    expect(events.some((e) => e.action === 'token.create' && e.actorTokenId !== adminAId)).toBe(false);
  });

  it('answers normally when recording fails, and says so in the log', async () => {
    const record = vi.spyOn(ctx.audit, 'record').mockRejectedValue(new Error('database is down'));
    const log = vi.spyOn(logger('audit'), 'error').mockImplementation(() => undefined);
    try {
      const r = await call('POST', `/api/federations/${fedA.id}/pause`, admin);
      expect(r.status).toBe(201);
      expect(r.json.status).toBe('paused');
      for (let i = 0; i < 50 && !log.mock.calls.length; i++) await new Promise((res) => setTimeout(res, 20));
      expect(record).toHaveBeenCalled();
      expect(log.mock.calls[0]).toEqual([
        { err: expect.objectContaining({ message: 'database is down' }) },
        'recording an audit event failed',
      ]);
    } finally {
      record.mockRestore();
      log.mockRestore();
    }
  });
});
