import { Writable } from 'node:stream';
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../db/database';
import { freshEmbedded } from '../db/testing';
import { createHttpApp } from '../http/app';
import { CoordinatorContext } from '../http/context';
import { createLogger } from './logger';

let db: Database;
let app: INestApplication;
let base: string;
let admin: string;
let captured = '';

const SECRET = 's3cr3t-never-logged';

beforeAll(async () => {
  db = await freshEmbedded();
  const ctx = new CoordinatorContext(db, '0.1.0-test');
  admin = (await ctx.tokens.create('admin')).token;
  const sink = new Writable({
    write(chunk, _encoding, done) {
      captured += String(chunk);
      done();
    },
  });
  app = await createHttpApp(ctx, { logger: createLogger({ level: 'debug', format: 'json' }, sink) });
  await app.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
});

afterAll(async () => {
  await app?.close();
  await db?.close();
});

type Entry = Record<string, unknown>;
const records = (): Entry[] =>
  captured
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Entry);
/** The request record of the request whose answer carried this X-Request-Id. */
const requestRecord = (res: Response): Entry | undefined =>
  records().find((r) => r.component === 'http' && r.reqId === res.headers.get('x-request-id'));

describe('request log', () => {
  it('writes one JSON record per request: method, path, route, status, response time, request id', async () => {
    const res = await fetch(`${base}/api/federations/?token=${SECRET}&perSite=1`, {
      headers: { authorization: `Bearer ${admin}`, cookie: `session=${SECRET}` },
    });
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    const r = requestRecord(res);
    expect(r).toMatchObject({
      level: 'info',
      name: 'coordinator',
      method: 'GET',
      path: '/api/federations/',
      query: 'token=[redacted]&perSite=1',
      route: '/api/federations',
      statusCode: 200,
      msg: 'GET /api/federations/ 200',
    });
    expect(r!.responseTime).toEqual(expect.any(Number));
    expect(r!.reqId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(String(r!.time))).not.toBeNaN();
  });

  it('keeps secrets out: no Authorization, cookie, token in the query or body of a refused request', async () => {
    const refused = await fetch(`${base}/api/federations?adminToken=${SECRET}`, {
      headers: { authorization: `Bearer fsk_${SECRET}` },
    });
    expect(refused.status).toBe(401);
    const enroll = await fetch(`${base}/api/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
      body: JSON.stringify({ token: `fse_${SECRET}`, publicKey: 'x', signature: 'y' }),
    });
    expect(enroll.status).toBeGreaterThanOrEqual(400);
    await new Promise((r) => setTimeout(r, 50));
    expect(requestRecord(refused)).toMatchObject({ statusCode: 401, query: 'adminToken=[redacted]' });
    expect(requestRecord(enroll)).toMatchObject({ method: 'POST', path: '/api/enroll' });
    expect(captured).not.toContain(SECRET);
    expect(captured).not.toContain(admin);
    expect(captured.toLowerCase()).not.toContain('authorization');
  });

  it('takes a sane X-Request-Id from the client, makes one otherwise, and logs /health at debug', async () => {
    const given = await fetch(`${base}/health`, { headers: { 'x-request-id': 'lb-42.a' } });
    expect(given.headers.get('x-request-id')).toBe('lb-42.a');
    const odd = await fetch(`${base}/health`, { headers: { 'x-request-id': 'two words' } });
    expect(odd.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((r) => setTimeout(r, 50));
    expect(requestRecord(given)).toMatchObject({ level: 'debug', path: '/health', statusCode: 200 });
  });

  it('writes nothing but JSON records with level, time and msg', () => {
    const all = records();
    expect(all.length).toBeGreaterThan(3);
    for (const r of all) {
      expect(typeof r.level).toBe('string');
      expect(typeof r.time).toBe('string');
      expect(typeof r.msg).toBe('string');
    }
  });
});
