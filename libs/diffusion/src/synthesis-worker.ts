/**
 * A synthesis worker: holds a replica of the model and runs its share of a DDIM sampling run's
 * (sample, batch) pairs (see ParallelSampler).
 */
import { parentPort } from 'node:worker_threads';
import { type BackendChoice, selectBackend } from './backend';
import { decodeModel } from './checkpoint';
import { ownsPair, type RunSettings, sampleOptions } from './parallel-sampler';
import { ddimSample, modelDenoiser } from './sampler';
import type { UNet } from './unet';

interface Init {
  kind: 'init';
  model: Uint8Array;
  backend: BackendChoice;
}

interface Run extends RunSettings {
  kind: 'run';
  worker: number;
  workers: number;
}

let model: UNet | undefined;

parentPort!.on('message', async (msg: Init | Run) => {
  try {
    if (msg.kind === 'init') {
      await selectBackend(msg.backend);
      model = decodeModel(msg.model, 'model').model;
      parentPort!.postMessage({ kind: 'ready' });
      return;
    }
    if (!model) throw new Error('worker used before init');
    const batches = Math.ceil(msg.count / msg.batchSize);
    const r = await ddimSample(modelDenoiser(model), msg.source, msg.count, msg.size, {
      ...sampleOptions(msg),
      only: (s, j) => ownsPair(s, j, batches, msg.worker, msg.workers),
      onStep: () => parentPort!.postMessage({ kind: 'step' }),
    });
    parentPort!.postMessage({ kind: 'done', samples: r.samples });
  } catch (err) {
    parentPort!.postMessage({ kind: 'error', message: (err as Error).stack ?? String(err) });
  }
});
