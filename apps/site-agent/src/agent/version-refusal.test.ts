import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION, socketParser } from '@fedsynth/protocol';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from '../cli/agent-process';
import { loadAgentConfig } from '../config/agent-config';
import { generateIdentityKey } from '../identity/identity-key';
import { AGENT_VERSION } from '../version';
import type { Logger } from './logger';
import { SiteAgent } from './site-agent';
import { readStatus } from './status';

/**
 * This agent grown old: a stand-in coordinator (plain socket.io) that speaks the next protocol
 * version refuses its login as the real one does. The agent must stop at once, not retry, and say
 * which versions met and how to upgrade.
 */
const NEWER = PROTOCOL_VERSION + 1;
let io: Server;
let url: string;
let logins = 0;
const stateDir = mkdtempSync(join(tmpdir(), 'fedsynth-agent-version-'));

beforeAll(async () => {
  const http = createServer();
  io = new Server(http, { transports: ['websocket'], parser: socketParser });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  io.of('/agents').on('connection', (socket) => {
    socket.emit('auth.challenge', {
      protocolVersion: NEWER,
      nonce: new Uint8Array(32).fill(1),
      serverTime: new Date().toISOString(),
    });
    socket.on('auth.response', (m: { protocolVersion: number }) => {
      logins++;
      socket.emit('protocol.error', {
        code: 'WRONG_VERSION',
        message: `this agent speaks protocol version ${m.protocolVersion}; the coordinator speaks version ${NEWER}: upgrade the agent (...)`,
      });
      socket.disconnect(true);
    });
  });
});

afterAll(() => {
  io?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('an agent older than its coordinator', () => {
  it('stops on the refusal, names both protocol versions and the upgrade command, and does not reconnect', async () => {
    const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
    const log: Logger = {
      json: true,
      info: (message, fields) => lines.push({ level: 'info', message, fields }),
      warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
      error: (message, fields) => lines.push({ level: 'error', message, fields }),
    };
    const configSources = { stateDir, env: {}, flags: { siteName: 'h1' } };
    const agent = new SiteAgent({
      config: loadAgentConfig(configSources),
      configSources,
      identity: generateIdentityKey(new Uint8Array(32).fill(3)),
      enrollment: {
        coordinatorUrl: url,
        siteId: 's1',
        siteName: 'h1',
        federationId: 'f1',
        status: 'approved',
        coordinatorKey: Buffer.alloc(32, 7).toString('base64'),
        enrolledAt: new Date().toISOString(),
      },
      log,
      backend: { backend: 'wasm', device: 'test' },
    });
    const err = await agent.run().then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toContain(
      `this agent (fedsynth-agent ${AGENT_VERSION}) speaks protocol version ${PROTOCOL_VERSION}, the coordinator at ${url} version ${NEWER}: upgrade the agent: `,
    );
    // In a checkout the advice is to update it; a packed install gets its npm command (packaging test).
    expect(err?.message).toMatch(
      /update the fedsynth checkout at .* \(git pull, then npm ci\); then restart it/,
    );
    const logged = lines.find((l) => l.level === 'error');
    expect(logged?.message).toBe(err?.message);
    expect(logged?.fields).toMatchObject({ agentProtocol: PROTOCOL_VERSION, coordinatorProtocol: NEWER });
    // `fedsynth-agent status` shows the advice; no second login came.
    expect(readStatus(stateDir)?.lastError).toBe(err?.message);
    await new Promise((r) => setTimeout(r, 3000));
    expect(logins).toBe(1);
  });

  it('`fedsynth-agent run` exits 1 with that advice instead of retrying', async () => {
    const cliState = join(stateDir, 'cli');
    const init = await runAgent(['init', '--state-dir', cliState, '--site-name', 'h2'], 60_000);
    expect(init.code, init.err).toBe(0);
    writeFileSync(
      join(cliState, 'enrollment.json'),
      JSON.stringify({
        coordinatorUrl: url,
        siteId: 's2',
        siteName: 'h2',
        federationId: 'f1',
        status: 'approved',
        coordinatorKey: Buffer.alloc(32, 7).toString('base64'),
        enrolledAt: new Date().toISOString(),
      }),
    );
    const before = logins;
    const run = await runAgent(['run', '--state-dir', cliState, '--log-format', 'json'], 90_000);
    expect(run.code, run.err).toBe(1);
    expect(run.err).toMatch(
      new RegExp(
        `^fedsynth-agent run: the coordinator refused this agent: .*protocol version ${PROTOCOL_VERSION}, .*version ${NEWER}: upgrade the agent: `,
        'm',
      ),
    );
    expect(logins - before).toBe(1);
  }, 120_000);
});
