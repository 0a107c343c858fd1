import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { LocalFederation } from '../apps/demo/src/local-federation';
import { startTestCoordinator } from './tiny-federation';
import { WireCapture } from './wire-capture';

/** A running federation of phantom sites whose first site talks through a wire capture. */
export interface CapturedFederation {
  dir: string;
  fed: LocalFederation;
  /** What site-1 sent, byte for byte. */
  capture: WireCapture;
  federationId: string;
  /** Each site's data folder, in the order of `sites`. */
  dataDirs: string[];
}

/**
 * For a test file: before its tests, a test coordinator on a fresh database, a federation named
 * `name` with `config`, phantom sites (`sites`, default site-1..3, phantoms drawn from `seed`) with
 * site-1 connected through a capturing proxy, and the federation started; after them, everything
 * stopped and removed. The returned object is filled in by the time the tests run.
 */
export function capturedFederation(
  name: string,
  config: Record<string, unknown>,
  opts: { seed: number; sites?: string[] },
): CapturedFederation {
  const out = { dataDirs: [] as string[] } as unknown as CapturedFederation;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    out.dir = mkdtempSync(join(tmpdir(), `fedsynth-${name}-`));
    ({ fed: out.fed, drop } = await startTestCoordinator(out.dir));
    out.capture = new WireCapture(() => Number(new URL(out.fed.url).port));
    await out.capture.start();
    const f = await out.fed.createFederation(name, config);
    out.federationId = f.id;
    out.dataDirs.push(
      ...(await out.fed.addPhantomSites(out.federationId, opts.sites ?? ['site-1', 'site-2', 'site-3'], {
        dataRoot: join(out.dir, 'data'),
        seed: opts.seed,
        coordinatorUrl: (k) => (k === 0 ? `http://127.0.0.1:${out.capture.port}` : undefined),
      })),
    );
    await out.fed.api('POST', `/api/federations/${out.federationId}/start`);
  }, 300_000);
  afterAll(async () => {
    out.fed?.killAll();
    await out.capture?.stop();
    await drop?.();
    if (out.dir) rmSync(out.dir, { recursive: true, force: true });
  });
  return out;
}
