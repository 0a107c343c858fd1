import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiTokenService } from './auth/api-tokens';
import { main } from './cli';
import { openDatabase } from './db/database';
import { ApiTokenEntity } from './db/entities';
import { freshPostgresUrl } from './db/testing';
import { createHttpApp } from './http/app';
import { CoordinatorContext } from './http/context';

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe('fedsynth-coordinator CLI', () => {
  it('migrates, creates a token that the API accepts, and names usage errors', async () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-coord-cli-'));
    await main(['migrate', '--data-dir', dir]);
    expect(process.exitCode).toBe(0);
    expect(out.join('')).toMatch(/schema up to date \(embedded/);
    await main(['token', 'create', '--role', 'researcher', '--data-dir', dir]);
    expect(process.exitCode).toBe(0);
    const token = out.at(-1)!.trim();
    const db = await openDatabase({ dataDir: dir });
    expect(
      await new ApiTokenService(db.dataSource.getRepository(ApiTokenEntity)).verify(token),
    ).toMatchObject({ role: 'researcher' });
    await db.close();
    await main(['token', 'create', '--role', 'root', '--data-dir', dir]);
    expect(process.exitCode).toBe(2);
    expect(err.join('')).toMatch(/--role must be admin or researcher/);
    await main(['federation', 'status', '--url', 'http://127.0.0.1:1', '--token', 'fsk_x']);
    expect(process.exitCode).toBe(1);
    expect(err.join('')).toMatch(/cannot reach the coordinator at http:\/\/127\.0\.0\.1:1/);
    await main(['frobnicate']);
    expect(process.exitCode).toBe(2);
  }, 60_000);

  it('creates, lists and revokes tokens on the database; the API then refuses the revoked one', async () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
    const pg = await freshPostgresUrl();
    const db = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() });
    const ctx = new CoordinatorContext(db, '0.1.0-test');
    const app = await createHttpApp(ctx);
    try {
      await ctx.federations.create({ name: 'fed-a' });
      await ctx.federations.create({ name: 'fed-b' });
      const admin = (await ctx.tokens.create('admin', 'root')).token;
      await app.listen(0, '127.0.0.1');
      const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
      const dbFlags = ['--database-url', pg.url];
      const cli = async (...args: string[]) => {
        out.length = 0;
        err.length = 0;
        await main(args);
        return { code: process.exitCode, out: out.join(''), err: err.join('') };
      };

      const made = await cli(
        'token',
        'create',
        '--role',
        'researcher',
        '--label',
        'night shift',
        '--expires-hours',
        '12',
        '--federation',
        'fed-a',
        '--federation=fed-b',
        ...dbFlags,
      );
      expect(made.code, made.err).toBe(0);
      const token = made.out.trim();
      expect(token).toMatch(/^fsk_[\w-]{40,}$/);
      const id = /token ([0-9a-f-]{36}) for federations fed-a, fed-b; expires /.exec(made.err)?.[1];
      expect(id, made.err).toBeDefined();
      const get = (t: string) =>
        fetch(`${base}/api/federations`, { headers: { authorization: `Bearer ${t}` } }).then(async (r) => ({
          status: r.status,
          json: (await r.json()) as { name: string }[],
        }));
      expect((await get(token)).json.map((f) => f.name).sort()).toEqual(['fed-a', 'fed-b']);

      const list = await cli('token', 'list', ...dbFlags);
      expect(list.code, list.err).toBe(0);
      const line = list.out.split('\n').find((l) => l.startsWith(id!));
      expect(line).toMatch(/researcher\s+active\s+night shift/);
      expect(line).toMatch(/fed-a,fed-b$/);
      expect(list.out.split('\n')[0]).toMatch(
        /^id\s+role\s+state\s+label\s+created\s+expires\s+last used\s+federations$/,
      );
      expect(list.out).not.toContain(token);
      expect(list.out).not.toContain(admin);

      const revoked = await cli('token', 'revoke', id!, ...dbFlags);
      expect(revoked.code, revoked.err).toBe(0);
      expect(revoked.out).toContain(`revoked researcher token ${id} (night shift)`);
      expect((await get(token)).status).toBe(401);
      expect((await cli('token', 'list', ...dbFlags)).out).toMatch(
        new RegExp(`${id}\\s+researcher\\s+revoked`),
      );
      const again = await cli('token', 'revoke', id!, ...dbFlags);
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/no active API token/);
      const unknown = await cli('token', 'create', '--role', 'admin', '--federation', 'fed-z', ...dbFlags);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toMatch(/no federation "fed-z"/);
      expect((await cli('token', 'create', '--role', 'admin', '--expires-hours', '0', ...dbFlags)).code).toBe(
        2,
      );
      expect((await cli('token', 'frob', ...dbFlags)).code).toBe(2);

      // Through the REST API of the running coordinator: the same commands, and the audit trail.
      const api = ['--url', base, '--token', admin];
      const remote = await cli('token', 'create', '--role', 'researcher', '--label', 'via api', ...api);
      expect(remote.code, remote.err).toBe(0);
      const remoteToken = remote.out.trim();
      expect((await get(remoteToken)).json).toHaveLength(2);
      const remoteList = await cli('token', 'list', ...api);
      expect(remoteList.out).toMatch(/researcher\s+active\s+via api/);
      expect(remoteList.out).not.toContain(remoteToken);
      const remoteId = /token ([0-9a-f-]{36})/.exec(remote.err)![1];
      expect((await cli('token', 'revoke', remoteId, ...api)).code).toBe(0);
      expect((await get(remoteToken)).status).toBe(401);
      await ctx.audit.settled();
      const audit = await cli('audit', '--limit', '5', ...api);
      expect(audit.code, audit.err).toBe(0);
      expect(audit.out.split('\n')[0]).toMatch(/^id\s+time\s+who\s+address\s+action\s+target\s+status/);
      expect(audit.out).toMatch(new RegExp(`token\\.revoke\\s+${remoteId}\\s+201`));
      expect(audit.out).toContain('auth.failed');
      const local = await cli('audit', ...dbFlags);
      expect(local.out).toMatch(/root \(admin\)/);
      expect(local.out).not.toContain(remoteToken);
      const refused = await cli('token', 'list', '--url', base, '--token', remoteToken);
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/UNAUTHENTICATED/);
    } finally {
      await app.close();
      await db.close();
      await pg.drop();
    }
  }, 60_000);
});
