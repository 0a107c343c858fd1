import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors/coordinator-error';
import { selfSignedCert } from '../testing/self-signed';
import { sendError } from './respond';

/**
 * sendError on a request whose body was not read, against a raw client on a real connection:
 * what the server reads of a refused upload, and whether the client gets the answer.
 */
const KiB = 1024;
/** One read of a connection (libuv's read size); the server reads in steps of it. */
const READ = 64 * KiB;
/** The lingering allowance of respond.ts, stated here independently. */
const ALLOWANCE = 64 * KiB;

interface Refusing {
  server: Server;
  port: number;
  /** The server side of the last connection, once its request came. */
  last: () => IncomingMessage | undefined;
}

async function refusing(make: (h: (req: IncomingMessage, res: never) => void) => Server): Promise<Refusing> {
  let last: IncomingMessage | undefined;
  const server = make((req, res) => {
    last = req;
    sendError(req, res, ErrorCode.UNAUTHENTICATED, 'an API token is required');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, port, last: () => last };
}

/** Sends headers announcing `length` bytes, then body bytes as fast as the connection takes them. */
function flood(
  socket: Socket,
  length: number,
  limit = length,
): { headerBytes: number; sent: () => number; stop: () => void } {
  const piece = Buffer.alloc(256 * KiB, 'a');
  let sent = 0;
  let stopped = false;
  const head = `POST /api/federations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  socket.write(head);
  const pump = () => {
    while (!stopped && sent < limit) {
      const n = Math.min(piece.length, limit - sent);
      sent += n;
      if (!socket.write(piece.subarray(0, n))) return void socket.once('drain', pump);
    }
  };
  socket.on('error', () => {});
  pump();
  return {
    headerBytes: head.length,
    sent: () => sent,
    stop: () => {
      stopped = true;
    },
  };
}

const collect = (socket: Socket) => {
  const out = { text: '', ended: false, error: '' };
  socket.on('data', (d: Buffer) => {
    out.text += d.toString('latin1');
  });
  socket.on('end', () => {
    out.ended = true;
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    out.error = e.code ?? e.message;
  });
  return out;
};

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each([
  ['TCP', false],
  ['TLS', true],
] as const)('a refused upload over %s', (_name, tls) => {
  let dir = '';
  let target: Refusing;
  const open = (): Socket =>
    tls
      ? tlsConnect({ port: target.port, host: '127.0.0.1', rejectUnauthorized: false })
      : netConnect(target.port, '127.0.0.1');

  beforeAll(async () => {
    if (!tls) {
      target = await refusing((h) => createServer(h as never));
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'fedsynth-respond-tls-'));
    const { keyPath, certPath } = selfSignedCert(dir);
    const key = readFileSync(keyPath);
    const cert = readFileSync(certPath);
    target = await refusing((h) => createHttpsServer({ key, cert }, h as never));
  });
  afterAll(async () => {
    await new Promise((r) => target.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a client that keeps sending and ignores the answer: the server stops reading at the allowance plus one read, and the answer still arrives', async () => {
    const socket = open();
    const got = collect(socket);
    const f = flood(socket, 2 ** 40);
    await settle(1500);
    const req = target.last();
    expect(req).toBeDefined();
    // Everything the server took in: the headers, the 64 KiB of body it reads and throws away
    // for a client still sending, and the one read that crossed that; 1.5 s of a client sending
    // without pause would be hundreds of MB, and a server that merely paused the request would
    // also fill its buffer (another read or more).
    const read = req!.socket.bytesRead;
    expect(read).toBeLessThanOrEqual(f.headerBytes + ALLOWANCE + READ);
    expect(f.sent()).toBeGreaterThan(read + 1024 * KiB);
    expect(got.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(got.text).toMatch(/Connection: close/i);
    expect(got.text).toContain('"code":"UNAUTHENTICATED"');
    f.stop();
    socket.destroy();
  });

  it('a client that sends its whole small body before reading gets the answer and a clean close, not a reset', async () => {
    const socket = open();
    const got = collect(socket);
    flood(socket, 40 * KiB);
    await new Promise<void>((r) => socket.once('close', () => r()));
    expect(got.error).toBe('');
    expect(got.ended).toBe(true);
    expect(got.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(got.text).toContain('an API token is required');
    expect(target.last()!.socket.bytesRead).toBeGreaterThanOrEqual(40 * KiB);
  });
});
