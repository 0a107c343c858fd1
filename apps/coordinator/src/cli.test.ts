import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiTokenService } from './auth/api-tokens';
import { main } from './cli';
import { openDatabase } from './db/database';
import { ApiTokenEntity } from './db/entities';

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
});
