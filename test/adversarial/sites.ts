import { enrollmentPayload, signedAuthResponse, socketParser } from '@fedsynth/protocol';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';
import WebSocket from 'ws';
import { tinyFederation } from '../tiny-federation';
import { http, type Target } from './harness';

/** POST /api/enroll with a one-time token and a key, signed as the agent signs it. */
export function enroll(target: Target, token: string, kp: nacl.SignKeyPair) {
  const sig = nacl.sign.detached(enrollmentPayload(token, kp.publicKey), kp.secretKey);
  return http(target, 'POST', '/api/enroll', {
    token: null,
    body: {
      token,
      publicKey: Buffer.from(kp.publicKey).toString('base64'),
      signature: Buffer.from(sig).toString('base64'),
    },
  });
}

/** Enrolls a site with a fresh key through the public API and approves it as the admin. */
export async function enrolledSite(
  target: Target,
  federationId: string,
  name: string,
  seed?: number,
): Promise<{ kp: nacl.SignKeyPair; siteId: string }> {
  const kp =
    seed === undefined ? nacl.sign.keyPair() : nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(seed));
  const tok = await http(target, 'POST', `/api/federations/${federationId}/enrollment-tokens`, {
    body: { siteName: name },
  });
  const site = await enroll(target, tok.json.token as string, kp);
  if (site.status !== 201) throw new Error(`enrolling ${name}: ${site.text}`);
  const siteId = site.json.siteId as string;
  const ok = await http(target, 'POST', `/api/sites/${siteId}/approve`);
  if (ok.status !== 201) throw new Error(`approving ${name}: ${ok.text}`);
  return { kp, siteId };
}

/** What a socket.io connection saw: protocol errors, whether it logged in and when it closed. */
export interface Seen {
  socket: Socket;
  errors: { code: string; message: string }[];
  loggedIn: boolean;
  closedAt?: number;
}

/** Logs a site in over socket.io (as the agent does); resolves once logged in or refused. */
export function login(target: Target, kp: nacl.SignKeyPair): Promise<Seen> {
  return new Promise((resolve) => {
    const socket = io(`${target.url}/agents`, {
      transports: ['websocket'],
      reconnection: false,
      parser: socketParser,
    });
    const seen: Seen = { socket, errors: [], loggedIn: false };
    socket.on('auth.challenge', (c: { nonce: Uint8Array }) =>
      socket.emit('auth.response', signedAuthResponse(new Uint8Array(c.nonce), kp, 'test')),
    );
    socket.on('auth.ok', () => {
      seen.loggedIn = true;
      resolve(seen);
    });
    socket.on('protocol.error', (e) => seen.errors.push(e));
    socket.on('disconnect', () => {
      seen.closedAt = Date.now();
      resolve(seen);
    });
    socket.on('connect_error', (err) => {
      seen.errors.push({ code: 'CONNECT_ERROR', message: err.message });
      seen.closedAt = Date.now();
      resolve(seen);
    });
  });
}

/** A raw websocket speaking engine.io by hand, as an attacker would: no socket.io client at all. */
export function rawSocket(
  target: Target,
): Promise<{ ws: WebSocket; closed: Promise<number> } | { refused: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${target.port}/socket.io/?EIO=4&transport=websocket`);
    const closed = new Promise<number>((r) => ws.once('close', () => r(Date.now())));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ refused: `HTTP ${res.statusCode}` });
      ws.terminate();
    });
    ws.once('error', (err) => resolve({ refused: err.message }));
    // The engine.io handshake ("0{...}") comes first; after it the socket is ours to abuse.
    ws.once('message', () => resolve({ ws, closed }));
  });
}

/**
 * Pushes 1 MiB binary frames into a raw socket until it closes or `max` bytes went out; resolves
 * with the bytes the socket accepted.
 */
export async function flood(ws: WebSocket, max: number): Promise<number> {
  const frame = Buffer.alloc(1024 * 1024, 7);
  let sent = 0;
  while (sent < max && ws.readyState === WebSocket.OPEN) {
    await new Promise<void>((r) => ws.send(frame, { binary: true }, () => r()));
    sent += frame.length;
  }
  return sent;
}

/**
 * A federation of the system tests' small U-Net with `n` enrolled, approved sites (not started):
 * the coordinator initializes its model when it starts.
 */
export async function federationWithSites(
  target: Target,
  name: string,
  n: number,
  settings: {
    plan?: Record<string, unknown>;
    secagg?: Record<string, unknown>;
    [section: string]: unknown;
  } = {},
): Promise<{ federationId: string; sites: { kp: nacl.SignKeyPair; siteId: string; name: string }[] }> {
  const f = await http(target, 'POST', '/api/federations', {
    body: {
      name,
      ...settings,
      ...tinyFederation(
        { minSites: 3, waitSeconds: 60, ...settings.plan },
        { threatModel: 'honest-but-curious', ...settings.secagg },
      ),
    },
  });
  if (f.status !== 201) throw new Error(`creating ${name}: ${f.text}`);
  const federationId = f.json.id as string;
  const sites = [];
  for (let i = 0; i < n; i++) {
    const siteName = `${name}-site-${i + 1}`;
    sites.push({ ...(await enrolledSite(target, federationId, siteName)), name: siteName });
  }
  return { federationId, sites };
}

/** A small deterministic update of the right length for site k. */
export const deltaFor = (length: number, k: number) =>
  Float32Array.from({ length }, (_, i) => 0.001 * Math.sin(i * 0.37 + k));

/** Rounds of a federation as the API lists them. */
export async function roundsOf(target: Target, federationId: string) {
  return (await http(target, 'GET', `/api/federations/${federationId}/rounds`)).json as unknown as {
    id: string;
    number: number;
    stage: string;
    error: string | null;
    participants: { index: number; siteId: string }[];
    dropouts: { siteId: string; stage: string; reason?: string }[];
    checkpointIn: string;
    checkpointOut: string | null;
  }[];
}
