import { beforeAll, describe, expect, it } from 'vitest';
import { http, type Target, TINY, targetForFile } from './harness';
import { enrolledSite, login } from './sites';

/**
 * Who may see what: a site fetches only its own federation's models, per-site figures are for
 * admins, and API tokens are revocable, expiring and scoped to federations, with every admin
 * action in the coordinator's audit trail.
 */
const fedId: Record<'a' | 'b', string> = { a: '', b: '' };
const model: Record<'a' | 'b', string> = { a: '', b: '' };

async function uploadTiny(federationId: string, seed: number): Promise<string> {
  const d = await import('@fedsynth/diffusion');
  await d.selectBackend('wasm');
  const bytes = await d.createInitialModel({ ...TINY, prediction: 'sample', schedule: 'cosine', seed });
  const r = await fetch(`${target.url}/api/federations/${federationId}/checkpoint`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${target.admin}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  const json = (await r.json()) as { sha256: string };
  if (r.status !== 200) throw new Error(JSON.stringify(json));
  return json.sha256;
}

const file = targetForFile('authz', { args: ['--auth-failures', '100000'] });
let target: Target;

beforeAll(async () => {
  target = file.get();
  for (const k of ['a', 'b'] as const) {
    fedId[k] = (await http(target, 'POST', '/api/federations', { body: { name: `fed-${k}`, model: TINY } }))
      .json.id as string;
    model[k] = await uploadTiny(fedId[k], k === 'a' ? 1 : 2);
  }
});

describe('models', () => {
  it("a site of federation B cannot fetch federation A's model by its hash (nor learn that it exists); it fetches its own", async () => {
    const site = await enrolledSite(target, fedId.b, 'b-site');
    const s = await login(target, site.kp);
    expect(s.loggedIn).toBe(true);
    const chunks: string[] = [];
    s.socket.on('blob.chunk', (c: { transferId: string }) => chunks.push(c.transferId));
    const unknown = 'f'.repeat(64);
    for (const sha of [model.a, unknown, model.b]) s.socket.emit('blob.request', { sha256: sha, offset: 0 });
    await new Promise((r) => setTimeout(r, 1000));
    s.socket.disconnect();
    expect(new Set(chunks)).toEqual(new Set([model.b]));
    const refusals = s.errors.filter((e) => e.code === 'NOT_FOUND');
    expect(refusals.map((e) => e.message)).toEqual([
      `no model ${model.a} for this site`,
      `no model ${unknown} for this site`,
    ]);
  });
});

describe('API tokens and roles', () => {
  it('researchers read global figures but not per-site ones; a scoped token sees only its federation', async () => {
    const researcher = (await http(target, 'POST', '/api/tokens', { body: { role: 'researcher' } })).json
      .token as string;
    expect(
      (await http(target, 'GET', `/api/federations/${fedId.a}/metrics`, { token: researcher })).status,
    ).toBe(200);
    const perSite = await http(target, 'GET', `/api/federations/${fedId.a}/metrics?perSite=1`, {
      token: researcher,
    });
    expect(perSite.status).toBe(403);
    const scoped = (
      await http(target, 'POST', '/api/tokens', { body: { role: 'researcher', federations: ['fed-a'] } })
    ).json.token as string;
    const listed = (await http(target, 'GET', '/api/federations', { token: scoped })).json as {
      name: string;
    }[];
    expect(listed.map((f) => f.name)).toEqual(['fed-a']);
    expect((await http(target, 'GET', `/api/federations/${fedId.b}/rounds`, { token: scoped })).status).toBe(
      403,
    );
    expect((await http(target, 'GET', `/api/checkpoints/${model.b}`, { token: scoped })).status).toBe(403);
    expect((await http(target, 'GET', `/api/checkpoints/${model.a}`, { token: scoped })).status).toBe(200);
  });

  it('a revoked token and an expired token are refused at once', async () => {
    const t = (await http(target, 'POST', '/api/tokens', { body: { role: 'researcher', label: 'laptop' } }))
      .json as unknown as { id: string; token: string };
    expect((await http(target, 'GET', '/api/federations', { token: t.token })).status).toBe(200);
    expect((await http(target, 'POST', `/api/tokens/${t.id}/revoke`)).status).toBe(201);
    const revoked = await http(target, 'GET', '/api/federations', { token: t.token });
    expect(revoked.status).toBe(401);
    const short = (
      await http(target, 'POST', '/api/tokens', { body: { role: 'researcher', expiresInHours: 1 / 3600 } })
    ).json.token as string;
    await new Promise((r) => setTimeout(r, 1500));
    const expired = await http(target, 'GET', '/api/federations', { token: short });
    expect(expired.status).toBe(401);
    expect(expired.json.code).toBe('TOKEN_EXPIRED');
    // Listed without secrets, with the revocation.
    const list = (await http(target, 'GET', '/api/tokens')).text;
    expect(list).not.toContain(t.token);
    expect(list).not.toContain(short);
    expect(JSON.parse(list).find((x: { id: string }) => x.id === t.id).revokedAt).toBeTruthy();
  });

  it('the audit trail names who did what, when and from where, and keeps no secret', async () => {
    const events = (await http(target, 'GET', '/api/audit?limit=500')).json as unknown as {
      action: string;
      address: string;
      actorRole: string | null;
      status: number;
    }[];
    const actions = new Set(events.map((e) => e.action));
    for (const a of [
      'federation.create',
      'model.upload',
      'token.create',
      'token.revoke',
      'site.approve',
      'auth.failed',
    ])
      expect(actions, a).toContain(a);
    for (const e of events) expect(e.address).toMatch(/127\.0\.0\.1|::1/);
    expect(JSON.stringify(events)).not.toMatch(/fsk_[A-Za-z0-9_-]{20}|fse_[A-Za-z0-9_-]{20}/);
  });
});
