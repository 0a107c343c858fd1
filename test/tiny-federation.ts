import { join } from 'node:path';
import { freshPostgresUrl } from '../apps/coordinator/src/db/testing';
import { LocalFederation } from '../apps/demo/src/local-federation';

/**
 * The federation the system tests train: a U-Net small enough for CPU in seconds (16x16 inputs,
 * channels 8/16/16), three sites, x0 prediction; `plan` and `secagg` override the defaults.
 */
export function tinyFederation(plan: Record<string, unknown> = {}, secagg: Record<string, unknown> = {}) {
  return {
    model: { size: 16, channels: [8, 16, 16], numResBlocks: 1 },
    plan: {
      localSteps: 10,
      batchSize: 8,
      lr: 1e-3,
      prediction: 'sample',
      minSites: 3,
      waitSeconds: 120,
      ...plan,
    },
    secagg: { clip: 0.2, levels: 65536, maxWeight: 10_000, ...secagg },
  };
}

/**
 * A coordinator process on a fresh database of the test PostgreSQL server, with the short
 * deadlines and wasm-backed agents the system tests use; `drop` removes the database.
 */
export async function startTestCoordinator(
  dir: string,
  opts: { stageSeconds?: number; trainSeconds?: number; coordinatorArgs?: string[] } = {},
): Promise<{ fed: LocalFederation; drop: () => Promise<void> }> {
  const db = await freshPostgresUrl();
  const fed = new LocalFederation({
    dir: join(dir, 'work'),
    databaseUrl: db.url,
    stageSeconds: opts.stageSeconds ?? 30,
    trainSeconds: opts.trainSeconds ?? 120,
    retrySeconds: 1,
    agentEnv: { FEDSYNTH_BACKEND: 'wasm' },
    coordinatorArgs: opts.coordinatorArgs,
  });
  try {
    await fed.startCoordinator();
  } catch (err) {
    fed.killAll();
    await db.drop();
    throw err;
  }
  return { fed, drop: db.drop };
}
