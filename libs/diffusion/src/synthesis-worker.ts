/**
 * A synthesis worker: holds a replica of the model and runs its share of a DDIM sampling run's
 * (sample, batch) pairs (see ParallelSampler).
 */
import { parentPort } from 'node:worker_threads';
import { type BackendChoice, selectBackend } from './backend';
import { decodeModel } from './checkpoint';
import type { PredictionType } from './objective';
import { ddimSample, modelDenoiser } from './sampler';
import { makeSchedule, type ScheduleName } from './schedule';
import type { UNet } from './unet';

interface Init {
  kind: 'init';
  model: Uint8Array;
  backend: BackendChoice;
}

interface Run {
  kind: 'run';
  source: Float32Array;
  count: number;
  size: number;
  schedule: ScheduleName;
  timesteps: number;
  prediction: PredictionType;
  steps: number;
  eta: number;
  samples: number;
  seed: number;
  batchSize: number;
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
    const r = ddimSample(modelDenoiser(model), msg.source, msg.count, msg.size, {
      schedule: makeSchedule(msg.schedule, msg.timesteps),
      prediction: msg.prediction,
      steps: msg.steps,
      eta: msg.eta,
      samples: msg.samples,
      seed: msg.seed,
      batchSize: msg.batchSize,
      only: (s, j) => (s * batches + j) % msg.workers === msg.worker,
      onStep: () => parentPort!.postMessage({ kind: 'step' }),
    });
    parentPort!.postMessage({ kind: 'done', samples: r.samples });
  } catch (err) {
    parentPort!.postMessage({ kind: 'error', message: (err as Error).stack ?? String(err) });
  }
});
