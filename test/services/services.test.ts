import { realpathSync } from 'node:fs';
import { Client } from 'pg';
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';

/**
 * The suite's globalSetup (global-setup.ts) starts its own PostgreSQL and Redis: the workers must
 * see their URLs, and those must lead to the servers in this run's temporary folder, not to any
 * server already running on the machine (such as one on 5432 or 6379).
 */
const started = (process.env.FEDSYNTH_TEST_STARTED ?? '').split(',');
/** Set explicitly by whoever ran the tests, so the setup did not start that one. */
const given = (name: string, env: string) => !started.includes(name) && !!process.env[env];
const servicesDir = () => {
  const dir = process.env.FEDSYNTH_TEST_SERVICES_DIR;
  expect(dir, 'FEDSYNTH_TEST_SERVICES_DIR: did the globalSetup run?').toBeTruthy();
  return realpathSync(dir as string);
};

describe("the test suite's own servers", () => {
  it.skipIf(given('postgres', 'FEDSYNTH_TEST_PG'))(
    'PostgreSQL runs from the temporary folder on its own port',
    async () => {
      const url = process.env.FEDSYNTH_TEST_PG ?? '';
      expect(url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
      const dir = servicesDir();
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
        const show = async (name: string) => (await client.query(`SHOW ${name}`)).rows[0][name] as string;
        expect(await show('port')).toBe(new URL(url).port);
        expect(await show('port')).not.toBe('5432');
        expect(realpathSync(await show('data_directory'))).toBe(`${dir}/pg`);
        expect(await show('listen_addresses')).toBe('127.0.0.1');
        expect(await show('unix_socket_directories')).toBe(process.env.FEDSYNTH_TEST_SERVICES_DIR);
        expect(Number(await show('max_connections'))).toBeGreaterThanOrEqual(200);
      } finally {
        await client.end();
      }
    },
  );

  it.skipIf(given('redis', 'FEDSYNTH_TEST_REDIS'))(
    'Redis runs from the temporary folder on its own port',
    async () => {
      const url = process.env.FEDSYNTH_TEST_REDIS ?? '';
      expect(url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      const dir = servicesDir();
      const client = createClient({ url });
      await client.connect();
      try {
        expect(await client.ping()).toBe('PONG');
        const info = await client.info('server');
        expect(info).toContain(`tcp_port:${new URL(url).port}`);
        expect(new URL(url).port).not.toBe('6379');
        const config = await client.configGet('dir');
        expect(realpathSync(config.dir)).toBe(dir);
      } finally {
        await client.quit();
      }
    },
  );
});
