import { createInitialModel } from '@fedsynth/diffusion';
import type { INestApplication } from '@nestjs/common';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../db/database';
import { freshEmbedded } from '../db/testing';
import { ensureModelBackend } from '../model-backend';
import { enrollmentPayload } from '../sites/enrollment-service';
import { apiCall } from '../testing/api-call';
import { createHttpApp } from './app';
import { CoordinatorContext } from './context';

let db: Database;
let app: INestApplication;
let base: string;
let admin: string;
let researcher: string;

beforeAll(async () => {
  db = await freshEmbedded();
  const ctx = new CoordinatorContext(db, '0.1.0-test');
  admin = (await ctx.tokens.create('admin')).token;
  researcher = (await ctx.tokens.create('researcher')).token;
  app = await createHttpApp(ctx);
  await app.listen(0, '127.0.0.1');
  const addr = app.getHttpServer().address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
}, 60_000);

afterAll(async () => {
  await app?.close();
  await db?.close();
});

const call = (method: string, path: string, token?: string, body?: unknown) =>
  apiCall(base, method, path, { token, body });

describe('coordinator HTTP API', () => {
  it('answers /health, /metrics and /api/docs', async () => {
    const h = await call('GET', '/health');
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: 'ok', database: 'embedded' });
    const m = await call('GET', '/metrics');
    expect(m.text).toMatch(/fedsynth_uptime_seconds \d+/);
    expect(m.text).toMatch(/fedsynth_connected_sites 0/);
    expect(m.text).toMatch(/# TYPE fedsynth_federations gauge/);
    expect(m.text).toMatch(/fedsynth_process_resident_memory_bytes \d+/);
    const docs = await call('GET', '/api/docs');
    expect(docs.status).toBe(200);
    const spec = await call('GET', '/api/docs/openapi.json');
    expect(Object.keys(spec.json.paths as object)).toEqual(
      expect.arrayContaining(['/health', '/api/federations', '/api/enroll', '/api/federations/{id}/metrics']),
    );
    // The federation body is the configuration schema itself: every section, unknown keys refused.
    const paths = spec.json.paths as Record<
      string,
      Record<
        string,
        {
          requestBody?: {
            content: Record<
              string,
              { schema: { properties: Record<string, unknown>; additionalProperties?: boolean } }
            >;
          };
        }
      >
    >;
    const body = paths['/api/federations'].post.requestBody!.content['application/json'].schema;
    expect(Object.keys(body.properties).sort()).toEqual([
      'dp',
      'model',
      'name',
      'plan',
      'privacy',
      'secagg',
      'strategy',
      'task',
    ]);
    expect(body.additionalProperties).toBe(false);
    expect(paths['/api/federations/{id}'].patch).toBeDefined();
  });

  it('runs the admin and site flow with roles enforced and inputs validated', async () => {
    expect((await call('GET', '/api/federations')).status).toBe(401);
    expect((await call('POST', '/api/federations', researcher, { name: 'x' })).status).toBe(403);
    const bad = await call('POST', '/api/federations', admin, { name: 'x', plan: 'oops' });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/plan/);
    const created = await call('POST', '/api/federations', admin, { name: 'mr-to-ct' });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    expect((await call('GET', '/api/federations', researcher)).json).toHaveLength(1);
    expect((await call('POST', `/api/federations/${id}/start`, admin)).json.status).toBe('running');
    expect((await call('POST', `/api/federations/${id}/start`, admin)).status).toBe(409);
    const tok = await call('POST', `/api/federations/${id}/enrollment-tokens`, admin, {
      siteName: 'hospital-1',
    });
    expect(tok.status).toBe(201);
    const kp = nacl.sign.keyPair();
    const token = tok.json.token as string;
    const sig = nacl.sign.detached(enrollmentPayload(token, kp.publicKey), kp.secretKey);
    const enrolled = await call('POST', '/api/enroll', undefined, {
      token,
      publicKey: Buffer.from(kp.publicKey).toString('base64'),
      signature: Buffer.from(sig).toString('base64'),
    });
    expect(enrolled.status).toBe(201);
    expect(enrolled.json.status).toBe('pending');
    const again = await call('POST', '/api/enroll', undefined, {
      token,
      publicKey: Buffer.from(kp.publicKey).toString('base64'),
      signature: Buffer.from(sig).toString('base64'),
    });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('TOKEN_USED');
    const sites = await call('GET', `/api/federations/${id}/sites`, admin);
    expect(sites.json[0]).toMatchObject({
      name: 'hospital-1',
      status: 'pending',
      publicKey: Buffer.from(kp.publicKey).toString('base64'),
    });
    expect((await call('POST', `/api/sites/${enrolled.json.siteId}/approve`, admin)).json.status).toBe(
      'approved',
    );
    const csv = await call('GET', `/api/federations/${id}/metrics?format=csv`, researcher);
    expect(csv.text.split('\n')[0]).toBe('round,site,name,value,count');
    expect((await call('GET', `/api/federations/nope`, researcher)).status).toBe(404);
    // The initial model goes up as a safetensors body, streamed (8 MB: real models are far above
    // any JSON body limit), and comes back by its hash.
    await ensureModelBackend();
    const model = await createInitialModel({
      size: 64,
      channels: [32, 64, 80],
      numResBlocks: 2,
      prediction: 'sample',
      schedule: 'cosine',
      seed: 7,
    });
    const put = (bytes: Uint8Array, type = 'application/octet-stream') =>
      fetch(`${base}/api/federations/${id}/checkpoint`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${admin}`, 'content-type': type },
        body: bytes,
      }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, string> }));
    const up = await put(model);
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    expect((await call('GET', `/api/federations/${id}`, researcher)).json.currentCheckpoint).toBe(
      up.json.sha256,
    );
    const down = await fetch(`${base}/api/checkpoints/${up.json.sha256}`, {
      headers: { authorization: `Bearer ${researcher}` },
    });
    expect(Buffer.from(await down.arrayBuffer()).equals(Buffer.from(model))).toBe(true);
    // Not safetensors; JSON instead of the binary body.
    expect((await put(new Uint8Array([1, 2, 3]))).status).toBe(400);
    expect((await put(model, 'application/json')).status).toBe(415);
  });
});
