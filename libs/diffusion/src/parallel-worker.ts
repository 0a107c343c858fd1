/**
 * A data-parallel training worker: holds a replica of the model, reads the current weights from
 * shared memory, computes the gradients of its shard of each batch and writes them back.
 */
import { parentPort } from 'node:worker_threads';
import { type BackendChoice, selectBackend } from './backend';
import { tf } from './tf';
import { type Batch, Trainer, type TrainerConfig } from './trainer';
import { UNet, type UNetConfig } from './unet';

interface Init {
  kind: 'init';
  unet: UNetConfig;
  trainer: Partial<TrainerConfig>;
  backend: BackendChoice;
  checkpointing: boolean;
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
}

interface Step {
  kind: 'step';
  batch: Batch;
  step: number;
  lo: number;
  hi: number;
  microBatch?: number;
}

let model: UNet | undefined;
let trainer: Trainer | undefined;
let weights: Float32Array;
let grads: Float32Array;

function loadWeights(m: UNet): void {
  let o = 0;
  for (const s of m.specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const t = tf.tensor(weights.subarray(o, o + n), s.shape);
    m.params.get(s.name)!.assign(t);
    t.dispose();
    o += n;
  }
}

parentPort!.on('message', async (msg: Init | Step) => {
  try {
    if (msg.kind === 'init') {
      await selectBackend(msg.backend);
      model = new UNet(msg.unet);
      model.checkpointing = msg.checkpointing;
      trainer = new Trainer(model, { ...msg.trainer, emaDecay: 0 });
      weights = new Float32Array(msg.weights);
      grads = new Float32Array(msg.grads);
      parentPort!.postMessage({ kind: 'ready' });
      return;
    }
    if (!model || !trainer) throw new Error('worker used before init');
    loadWeights(model);
    const part = await trainer.shardGrads(msg.batch, msg.step, msg.lo, msg.hi, false, msg.microBatch);
    let o = 0;
    for (const s of model.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const g = part.grads[s.name];
      if (g) grads.set((await g.data()) as Float32Array, o);
      else grads.fill(0, o, o + n);
      o += n;
    }
    tf.dispose(Object.values(part.grads));
    parentPort!.postMessage({ kind: 'done', loss: part.loss, mse: part.mse });
  } catch (err) {
    parentPort!.postMessage({ kind: 'error', message: (err as Error).stack ?? String(err) });
  }
});
