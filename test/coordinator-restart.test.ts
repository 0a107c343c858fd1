import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors } from '@fedsynth/diffusion/weights';
import type { Socket } from 'socket.io-client';
import nacl from 'tweetnacl';
import { afterAll, describe, expect, it } from 'vitest';
import { enrollmentPayload } from '../apps/coordinator/src/sites/enrollment-service';
import { startAgent } from '../apps/coordinator/src/testing/protocol-agent';
import { type SpawnedCoordinator, spawnCoordinator } from '../apps/demo/src/local-federation';
import { tinyFederation } from './tiny-federation';
import { until } from './until';

const children: ChildProcess[] = [];
/** The system tests' small U-Net (see tiny-federation.ts). */
const TINY_MODEL = tinyFederation().model;

/** Starts the built coordinator in its own process (embedded database in `dataDir`). */
async function serve(dataDir: string): Promise<SpawnedCoordinator> {
  const c = await spawnCoordinator(
    [
      'serve',
      '--data-dir',
      dataDir,
      '--port',
      '0',
      '--stage-seconds',
      '5',
      '--train-seconds',
      '8',
      '--retry-seconds',
      '1',
    ],
    { timeoutMs: 60_000 },
  );
  children.push(c.proc);
  return c;
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('coordinator restart (separate process, embedded database)', () => {
  it('killed mid-round, restarted: the round is aborted with its stage, training continues, nothing earlier is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-restart-'));
    const first = await serve(dir);
    const admin = /first admin API token[^\n]*\n\s*(fsk_\S+)/.exec(first.output())![1];
    const api = async (url: string, method: string, path: string, body?: unknown) => {
      const r = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      const j = await r.json();
      if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(j)}`);
      return j;
    };
    const fed = await api(first.url, 'POST', '/api/federations', {
      name: 'restart',
      model: TINY_MODEL,
      plan: { minSites: 3 },
      secagg: { clip: 0.5, levels: 65536, maxWeight: 1000 },
    });
    const keys = [1, 2, 3, 4].map((i) => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(40 + i)));
    for (const [i, kp] of keys.entries()) {
      const { token } = await api(first.url, 'POST', `/api/federations/${fed.id}/enrollment-tokens`, {
        siteName: `h${i}`,
      });
      const sig = nacl.sign.detached(enrollmentPayload(token, kp.publicKey), kp.secretKey);
      const site = await api(first.url, 'POST', '/api/enroll', {
        token,
        publicKey: Buffer.from(kp.publicKey).toString('base64'),
        signature: Buffer.from(sig).toString('base64'),
      });
      await api(first.url, 'POST', `/api/sites/${site.siteId}/approve`);
    }
    // A model of the federation's architecture, uploaded as the binary body the API takes.
    const d = await import('@fedsynth/diffusion');
    await d.selectBackend('wasm');
    const model = await d.createInitialModel({
      ...TINY_MODEL,
      prediction: 'sample',
      schedule: 'cosine',
      seed: 3,
    });
    const D = decodeSafetensors(model).arrays.reduce((n, a) => n + a.data.length, 0);
    const upload = await fetch(`${first.url}/api/federations/${fed.id}/checkpoint`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
      body: model,
    });
    const { sha256: initial } = (await upload.json()) as { sha256: string };
    expect(upload.status).toBe(200);
    await api(first.url, 'POST', `/api/federations/${fed.id}/start`);
    const delta = (k: number) => Float32Array.from({ length: D }, (_, i) => 0.01 * Math.sin(i + k));
    // First life: the agents hold their masked input back, so the round sits in masked-input.
    const never = () => new Promise<void>(() => undefined);
    const agents1: Socket[] = await Promise.all(
      keys.map((kp, k) => startAgent(`${first.url}/agents`, kp, delta(k), 10, { beforeMaskedInput: never })),
    );
    await until('a round in masked-input', async () => {
      const rounds = await api(first.url, 'GET', `/api/federations/${fed.id}/rounds`);
      return rounds.find((r: { stage: string }) => r.stage === 'masked-input');
    });
    first.proc.kill('SIGKILL');
    for (const a of agents1) a.disconnect();
    // Second life on the same data directory.
    const second = await serve(dir);
    expect(second.output()).toMatch(/marked 1 round\(s\) left unfinished by a restart as aborted/);
    const agents2 = await Promise.all(
      keys.map((kp, k) => startAgent(`${second.url}/agents`, kp, delta(k), 10)),
    );
    const done = await until('a completed round', async () => {
      const rounds = await api(second.url, 'GET', `/api/federations/${fed.id}/rounds`);
      return rounds.find((r: { stage: string }) => r.stage === 'completed');
    });
    for (const a of agents2) a.disconnect();
    const rounds = await api(second.url, 'GET', `/api/federations/${fed.id}/rounds`);
    const aborted = rounds.find((r: { stage: string }) => r.stage === 'aborted');
    expect(aborted.error).toMatch(/restarted while the round was in masked-input/);
    expect(aborted.checkpointIn).toBe(initial);
    expect(done.checkpointIn).toBe(initial);
    expect(done.number).toBeGreaterThan(aborted.number);
    const sites = await api(second.url, 'GET', `/api/federations/${fed.id}/sites`);
    expect(sites.map((s: { status: string }) => s.status)).toEqual([
      'approved',
      'approved',
      'approved',
      'approved',
    ]);
    const f = await api(second.url, 'GET', `/api/federations/${fed.id}`);
    expect(f.currentCheckpoint).toBe(done.checkpointOut);
    second.proc.kill('SIGTERM');
  }, 180_000);
});
