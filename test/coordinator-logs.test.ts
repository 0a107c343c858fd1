import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type SpawnedCoordinator, spawnCoordinator } from '../apps/demo/src/local-federation';
import { until } from './until';

const dir = mkdtempSync(join(tmpdir(), 'fedsynth-logs-'));
const children: ChildProcess[] = [];
/** Sent in an Authorization header and in query strings: it must appear in no output. */
const SECRET = 'not-for-the-log-7f3a9c';

/** The built coordinator on one embedded database (`dir`), with extra flags. */
async function serve(...flags: string[]): Promise<SpawnedCoordinator> {
  const c = await spawnCoordinator(['serve', '--data-dir', dir, '--port', '0', ...flags], {
    timeoutMs: 120_000,
  });
  children.push(c.proc);
  return c;
}

async function stop(c: SpawnedCoordinator): Promise<void> {
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGTERM');
  await exited;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('the coordinator log (separate process)', () => {
  let admin = '';

  it('--log-level warn writes no info records; the first admin token reaches stdout only', async () => {
    const c = await serve('--log-level', 'warn');
    admin = /first admin API token[^\n]*\n\s*(fsk_\S+)/.exec(c.stdout())![1];
    expect(c.stdout()).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    expect((await fetch(`${c.url}/api/federations?token=${SECRET}`)).status).toBe(401);
    await stop(c);
    const records = lines(c.stderr()).map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(records.map((r) => r.level)).toEqual(['warn']);
    expect(records[0].msg).toMatch(/printed it once on stdout \(it is not logged\)/);
    expect(c.stderr()).not.toContain(admin);
  }, 180_000);

  it('writes JSON records by default off a terminal: startup, one per request, no secrets', async () => {
    const c = await serve();
    const ok = await fetch(`${c.url}/api/federations?token=${SECRET}`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(ok.status).toBe(200);
    const refused = await fetch(`${c.url}/api/me?adminToken=${SECRET}`, {
      headers: { authorization: `Bearer ${SECRET}` },
    });
    expect(refused.status).toBe(401);
    const request = await until('the request record', async () =>
      lines(c.stderr())
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((r) => r.reqId === ok.headers.get('x-request-id')),
    );
    await stop(c);
    const records = lines(c.stderr()).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const r of records) expect(Object.keys(r)).toEqual(expect.arrayContaining(['level', 'time', 'msg']));
    expect(request).toMatchObject({
      level: 'info',
      method: 'GET',
      path: '/api/federations',
      route: '/api/federations',
      query: 'token=[redacted]',
      statusCode: 200,
    });
    expect(request.responseTime).toEqual(expect.any(Number));
    expect(records.find((r) => r.context === 'NestApplication')).toMatchObject({ level: 'info' });
    expect(records.find((r) => String(r.msg).startsWith('listening on'))).toMatchObject({ url: c.url });
    expect(records.find((r) => r.reqId === refused.headers.get('x-request-id'))).toMatchObject({
      statusCode: 401,
      query: 'adminToken=[redacted]',
    });
    expect(records.at(-1)).toMatchObject({ msg: 'stopping', signal: 'SIGTERM' });
    expect(c.output()).not.toContain(SECRET);
    expect(c.output()).not.toContain(admin);
  }, 180_000);

  it('--log-format pretty writes human lines', async () => {
    const c = await serve('--log-format', 'pretty');
    await fetch(`${c.url}/api/federations`, { headers: { authorization: `Bearer ${admin}` } });
    await until('the request line', async () =>
      c.stderr().includes('GET /api/federations 200') ? true : undefined,
    );
    await stop(c);
    const human = lines(c.stderr());
    for (const l of human) expect(() => JSON.parse(l)).toThrow();
    expect(human.find((l) => l.includes('listening on'))).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening on http/,
    );
    expect(c.stderr()).toMatch(/INFO: http: GET \/api\/federations 200 \{.*"responseTime":\d+/);
  }, 180_000);

  it('refuses a bad --log-level, naming the allowed values', async () => {
    await expect(serve('--log-level', 'loud')).rejects.toThrow(
      /--log-level: "loud" must be one of trace, debug, info, warn, error, fatal, silent/,
    );
  });
});
