import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '@fedsynth/diffusion/weights';
import { beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert } from '../../apps/coordinator/src/testing/self-signed';
import { http, startTarget, streamBody, type Target, TINY, targetForFile } from './harness';

/**
 * The initial model upload, the one large body the API takes: admin only, streamed to disk with a
 * size limit, checked against the federation's architecture before it becomes the federation's
 * model. Every refusal leaves the federation's model and the checkpoint folder as they were. And
 * the TLS side of the headers: HSTS only when the coordinator serves HTTPS.
 */
let federationId: string;
let d: typeof import('@fedsynth/diffusion');
const MB = 1024 * 1024;

const put = (bytes: Uint8Array, token = target.admin) =>
  fetch(`${target.url}/api/federations/${federationId}/checkpoint`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, string> }));

const model = (over: Partial<Parameters<typeof d.createInitialModel>[0]> = {}) =>
  d.createInitialModel({ ...TINY, prediction: 'sample', schedule: 'cosine', seed: 5, ...over });

/** Checkpoint files on disk, and leftovers of refused uploads. */
function stored(): { blobs: string[]; incoming: string[] } {
  const root = join(file.dir(), 'work', 'coordinator', 'checkpoints');
  const blobs: string[] = [];
  let incoming: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    if (e.name === 'incoming') incoming = readdirSync(join(root, e.name));
    else blobs.push(...readdirSync(join(root, e.name)));
  }
  return { blobs, incoming };
}

const file = targetForFile('upload', { args: ['--auth-failures', '100000', '--max-model-mb', '1'] });
let target: Target;

beforeAll(async () => {
  target = file.get();
  federationId = (await http(target, 'POST', '/api/federations', { body: { name: 'upload', model: TINY } }))
    .json.id as string;
  d = await import('@fedsynth/diffusion');
  await d.selectBackend('wasm');
});

const current = async () =>
  (await http(target, 'GET', `/api/federations/${federationId}`)).json.currentCheckpoint;

describe('model upload', () => {
  it('refuses a researcher, non-models, other architectures, NaN weights, another input size and oversize bodies; stores nothing of them', async () => {
    const good = await model();
    const researcher = (await http(target, 'POST', '/api/tokens', { body: { role: 'researcher' } })).json
      .token as string;
    expect((await put(good, researcher)).status).toBe(403);
    const oneParam = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [1], data: Float32Array.of(0) }]);
    const refusals: [string, Uint8Array, RegExp][] = [
      ['one parameter', oneParam, /not a fedsynth conditional U-Net/],
      [
        'other levels',
        await model({ channels: [8, 16] }),
        /has channels \[8,16\]; the federation's model has \[8,16,16\]/,
      ],
      ['other size', await model({ size: 32 }), /made for 32 px inputs; the federation trains at 16 px/],
    ];
    // NaN in one weight of an otherwise good model.
    const { arrays, metadata } = decodeSafetensors(good);
    arrays[3].data[7] = Number.NaN;
    refusals.push([
      'NaN weight',
      encodeSafetensors(arrays, metadata),
      new RegExp(`tensor "${arrays[3].name}" holds a non-finite value at element 7`),
    ]);
    for (const [what, bytes, message] of refusals) {
      const r = await put(bytes);
      expect(r.status, what).toBe(400);
      expect(r.json.message, what).toMatch(message);
    }
    // Over the 1 MiB limit: declared, and streamed without a length.
    const declared = await streamBody(target, {
      method: 'PUT',
      path: `/api/federations/${federationId}/checkpoint`,
      headers: { authorization: `Bearer ${target.admin}`, 'content-type': 'application/octet-stream' },
      total: 2 * 1024 * MB,
    });
    expect(declared.status).toBe(413);
    const streamed = await streamBody(target, {
      method: 'PUT',
      path: `/api/federations/${federationId}/checkpoint`,
      headers: { authorization: `Bearer ${target.admin}`, 'content-type': 'application/octet-stream' },
      total: 3 * MB,
      chunked: true,
    });
    expect(streamed.status).toBe(413);
    expect(await current()).toBeNull();
    expect(stored()).toEqual({ blobs: [], incoming: [] });
    // The real model is taken, and is what the federation now starts from.
    const ok = await put(good);
    expect(ok.status).toBe(200);
    expect(await current()).toBe(ok.json.sha256);
    expect(stored()).toEqual({ blobs: [`${ok.json.sha256}.safetensors`], incoming: [] });
  }, 60_000);
});

describe('TLS', () => {
  it('serves HSTS and upgrade-insecure-requests only under TLS', async () => {
    const tlsDir = mkdtempSync(join(tmpdir(), 'fedsynth-adv-tls-'));
    const { keyPath, certPath } = selfSignedCert(tlsDir);
    const tls = await startTarget(tlsDir, {
      args: ['--tls-cert', certPath, '--tls-key', keyPath],
    });
    try {
      expect(tls.url).toMatch(/^https:/);
      const headers = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
        const req = httpsRequest(`${tls.url}/`, { rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.headers);
        });
        req.on('error', reject);
        req.end();
      });
      expect(headers['strict-transport-security']).toMatch(/max-age=31536000/);
      expect(headers['content-security-policy']).toMatch(/upgrade-insecure-requests/);
      expect(headers['x-powered-by']).toBeUndefined();
    } finally {
      await tls.close();
      rmSync(tlsDir, { recursive: true, force: true });
    }
  }, 120_000);
});
