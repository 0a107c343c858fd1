import {
  BatchSampler,
  DEFAULT_OPTIMIZER,
  decodeModel,
  encodeModel,
  flattenCanonical,
  layoutOf,
  Trainer,
  tf,
  UNet,
  unflattenCanonical,
} from '@fedsynth/diffusion';
import { randomizeWeights, TINY } from '@fedsynth/diffusion/testing';
import type { SlicePair } from '@fedsynth/imaging';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ControlVariates, carryMismatch, type LocalData, trainLocally } from './local-training';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

function slices(n: number, size: number): SlicePair[] {
  return Array.from({ length: n }, (_, k) => ({
    subjectId: `s${k % 3}`,
    sliceIndex: k,
    size,
    source: Float32Array.from({ length: size * size }, (_, i) => Math.sin(i * 0.3 + k)),
    target: Float32Array.from({ length: size * size }, (_, i) => Math.cos(i * 0.2 - k)),
    mask: Uint8Array.from({ length: size * size }, (_, i) => (i % 9 === 0 ? 0 : 1)),
  }));
}

const plan = {
  localSteps: 3,
  batchSize: 6,
  lr: 1e-3,
  size: 16,
  prediction: 'v' as const,
  schedule: 'cosine' as const,
  fedProxMu: 0.05,
  dp: { clip: 1, noiseMultiplier: 0, delta: 1e-5 },
};

/** A 16 px model with every layer random (none zero-initialized), so an update touches every weight. */
async function randomCheckpoint(seed: number): Promise<Uint8Array> {
  const model = new UNet(TINY, 4);
  randomizeWeights(model, seed, 0.1);
  const checkpoint = await encodeModel(model, { size: '16' });
  model.dispose();
  return checkpoint;
}

/** The oracle's trainer: what trainLocally builds for the plan, without EMA or FedProx. */
function plainTrainer(model: UNet, lr: number, seed: number): Trainer {
  return new Trainer(model, {
    prediction: plan.prediction,
    schedule: plan.schedule,
    optimizer: { ...DEFAULT_OPTIMIZER, lr },
    emaDecay: 0,
    fedProxMu: 0,
    seed,
  });
}

/** Twelve 16 px training slices of three subjects, no validation. */
const DATA: LocalData = {
  size: 16,
  task: { sources: ['mr'], target: 'ct', context: 0 },
  train: slices(12, 16),
  val: [],
  trainSubjects: 3,
  valSubjects: 0,
};

describe('trainLocally', () => {
  it('with two threads, and with micro-batches, makes the update of one thread in one pass', async () => {
    const checkpoint = await randomCheckpoint(8);
    const data = DATA;
    const run = (trainingThreads: number, memoryMb?: number) =>
      trainLocally({
        checkpoint,
        plan,
        limits: { maxLocalSteps: 100, maxBatch: 32, trainingThreads, memoryMb },
        data,
        seed: 11,
        backend: 'wasm',
      });
    const single = await run(1);
    expect(single.threads).toBe(1);
    expect(single.microBatch).toBe(6);
    const parallel = await run(2);
    expect(parallel.threads).toBe(2);
    // 45 MiB per thread holds about two slices of this network at once (by the planner).
    const split = await run(1, 45);
    expect(split.microBatch).toBeLessThan(6);
    let largest = 0;
    for (const other of [parallel, split]) {
      let worst = 0;
      for (let i = 0; i < single.delta.length; i++) {
        worst = Math.max(worst, Math.abs(single.delta[i] - other.delta[i]));
        largest = Math.max(largest, Math.abs(single.delta[i]));
      }
      // The gradients are sums in another order, equal to rounding (parallel.test.ts checks them).
      // Adam divides by the gradient's own size, so where a gradient is at rounding level (a
      // cancellation) rounding can move that weight by up to lr: allow 1 in 10,000 such weights,
      // none beyond lr; every other weight must move as with one thread, within 1e-5.
      let off = 0;
      for (let i = 0; i < single.delta.length; i++)
        if (Math.abs(single.delta[i] - other.delta[i]) > 1e-5) off++;
      expect(off).toBeLessThanOrEqual(Math.ceil(single.delta.length / 10_000));
      expect(worst).toBeLessThan(plan.lr);
      expect(Math.abs(other.loss - single.loss)).toBeLessThan(1e-5);
    }
    // Three Adam steps at lr 1e-3 move the weights by about 3e-3: a real update was compared.
    expect(largest).toBeGreaterThan(1e-3);
  }, 60_000);

  it("with a local EMA, uploads the average's change, as the EMA of the plain runs' weights", async () => {
    const checkpoint = await randomCheckpoint(5);
    const data = DATA;
    const run = (localSteps: number, localEma?: number) =>
      trainLocally({
        checkpoint,
        plan: { ...plan, fedProxMu: 0, localSteps, ...(localEma === undefined ? {} : { localEma }) },
        limits: { maxLocalSteps: 100, maxBatch: 32, trainingThreads: 1 },
        data,
        seed: 5,
        backend: 'wasm',
      });
    // The same seed draws the same batches, so the first steps of a longer run are a shorter run's.
    const [one, two, ema] = [await run(1), await run(2), await run(2, 0.9)];
    // By hand, with the trainer's warm-up d_t = min(decay, (1 + t) / (10 + t)) after step t, from
    // e_0 = w_0 (delta 0): e_1 = d_1 * 0 + (1 - d_1) * one; e_2 = d_2 * e_1 + (1 - d_2) * two.
    const d1 = 2 / 11;
    const d2 = 3 / 12;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < ema.delta.length; i++) {
      const e1 = (1 - d1) * one.delta[i];
      const e2 = d2 * e1 + (1 - d2) * two.delta[i];
      worst = Math.max(worst, Math.abs(ema.delta[i] - e2));
      moved = Math.max(moved, Math.abs(two.delta[i] - ema.delta[i]));
    }
    expect(worst).toBeLessThan(1e-6);
    // ... and it is not the plain update.
    expect(moved).toBeGreaterThan(1e-4);
  }, 60_000);

  it("with keepOptimizer, round 2 continues round 1's Adam (moments and step), as one trainer run through both rounds", async () => {
    const w0 = await randomCheckpoint(3);
    const keepPlan = { ...plan, fedProxMu: 0, localSteps: 3, keepOptimizer: true as const };
    const limits = { maxLocalSteps: 100, maxBatch: 32, trainingThreads: 1 };
    const seed = 7;
    // The oracle: one Trainer, three steps from w0, then three more with a fresh batch sampler (a
    // round draws its batches anew) and the same optimizer.
    const { model } = decodeModel(w0);
    const trainer = plainTrainer(model, plan.lr, seed);
    const run3 = async () => {
      const sampler = new BatchSampler(DATA.train, plan.batchSize, seed);
      for (let s = 0; s < 3; s++) await trainer.step(sampler.next());
    };
    const flat = async () => flattenCanonical(await model.toNamedArrays());
    const base0 = await flat();
    await run3();
    const w1 = await encodeModel(model, { size: '16' });
    const base1 = await flat();
    await run3();
    const final = await flat();
    trainer.dispose();
    model.dispose();

    const round1 = await trainLocally({
      checkpoint: w0,
      plan: keepPlan,
      limits,
      data: DATA,
      seed,
      backend: 'wasm',
    });
    expect(round1.optimizer).toBeDefined();
    expect(round1.optimizer!.arrays.some((a) => a.name.startsWith('ema/'))).toBe(false);
    expect(round1.optimizer!.arrays.find((a) => a.name === 'step')!.data[0]).toBe(3);
    const worstOf = (delta: Float32Array, from: Float32Array, to: Float32Array) => {
      let w = 0;
      for (let i = 0; i < delta.length; i++) w = Math.max(w, Math.abs(delta[i] - (to[i] - from[i])));
      return w;
    };
    expect(worstOf(round1.delta, base0, base1)).toBeLessThan(1e-6);

    const round2 = (optimizer?: typeof round1.optimizer) =>
      trainLocally({ checkpoint: w1, plan: keepPlan, limits, data: DATA, seed, backend: 'wasm', optimizer });
    const carried = await round2(round1.optimizer);
    expect(carried.optimizerRestart).toBeUndefined();
    expect(worstOf(carried.delta, base1, final)).toBeLessThan(1e-6);
    expect(carried.optimizer!.arrays.find((a) => a.name === 'step')!.data[0]).toBe(6);

    // Without the carried state, round 2 starts Adam afresh and lands elsewhere.
    const fresh = await round2();
    expect(worstOf(fresh.delta, base1, final)).toBeGreaterThan(1e-4);
  }, 60_000);

  it('with SCAFFOLD, corrects every step by lr (ci - c) and returns ci - c - (y - x) / (K lr), as a hand-written loop', async () => {
    const w0 = await randomCheckpoint(5);
    const scaffoldPlan = { ...plan, fedProxMu: 0, localSteps: 4, lr: 2e-3, scaffold: {} };
    const limits = { maxLocalSteps: 100, maxBatch: 32, trainingThreads: 1 };
    const seed = 11;
    const { model } = decodeModel(w0);
    const layout = layoutOf(await model.toNamedArrays());
    const flat = async () => flattenCanonical(await model.toNamedArrays());
    const x = await flat();
    const n = x.length;
    const c = Float32Array.from({ length: n }, (_, i) => 0.3 * Math.sin(i * 0.71));
    const ci = Float32Array.from({ length: n }, (_, i) => 0.2 * Math.cos(i * 0.53));
    // The oracle: a Trainer whose weights are moved after each step through the canonical arrays
    // (PyTorch layout, loaded back), not through the agent's tensors in the model's layout.
    const trainer = plainTrainer(model, scaffoldPlan.lr, seed);
    const sampler = new BatchSampler(DATA.train, plan.batchSize, seed);
    for (let s = 0; s < scaffoldPlan.localSteps; s++) {
      await trainer.step(sampler.next());
      const w = await flat();
      for (let j = 0; j < n; j++) w[j] += scaffoldPlan.lr * (ci[j] - c[j]);
      model.loadNamedArrays(unflattenCanonical(w, layout));
    }
    const y = await flat();
    trainer.dispose();
    model.dispose();
    const k = scaffoldPlan.localSteps * scaffoldPlan.lr;
    const worst = (got: Float32Array, want: (j: number) => number) => {
      let m = 0;
      for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(got[j] - want(j)));
      return m;
    };

    const run = (scaffold?: ControlVariates) =>
      trainLocally({
        checkpoint: w0,
        plan: scaffold ? scaffoldPlan : { ...scaffoldPlan, scaffold: undefined },
        limits,
        data: DATA,
        seed,
        backend: 'wasm',
        ...(scaffold ? { scaffold } : {}),
      });
    const u = await run({ c, ci });
    expect(worst(u.delta, (j) => y[j] - x[j])).toBeLessThan(1e-6);
    expect(u.control).toBeDefined();
    // The control variate divides a difference of weights by K lr = 0.008: within about 1e-6 / 0.008.
    expect(worst(u.control!, (j) => ci[j] - c[j] - (y[j] - x[j]) / k)).toBeLessThan(2e-4);
    // The correction moved the weights: at least lr K |ci - c| on some value, against the plain run.
    const plain = await run();
    expect(plain.control).toBeUndefined();
    expect(worst(plain.delta, (j) => y[j] - x[j])).toBeGreaterThan(1e-3);

    // No kept control variate (the first round, or after a restart): the steps run uncorrected
    // (ci = c), and a kept one of another length is not used, with the reason.
    const first = await run({ c: null, ci: null });
    expect(worst(first.delta, (j) => plain.delta[j])).toBeLessThan(1e-6);
    expect(worst(first.control!, (j) => -plain.delta[j] / k)).toBeLessThan(2e-4);
    const wrong = await run({ c, ci: new Float32Array(5) });
    expect(wrong.controlRestart).toBe(`the kept control variate has 5 values, the model ${n}`);
    expect(worst(wrong.delta, (j) => plain.delta[j])).toBeLessThan(1e-6);
    await expect(run({ c: new Float32Array(3), ci: null })).rejects.toThrow(
      `the global control variate has 3 values; the model ${n}`,
    );
  }, 90_000);

  it('does not carry an optimizer state over to a model of another layout, and says why', async () => {
    const params = new Map([
      ['a', { size: 4 }],
      ['b', { size: 6 }],
    ]);
    const carry = (layout: [string, number][]) => ({
      arrays: layout.flatMap(([name, n]) =>
        ['m', 'v'].map((k) => ({
          name: `adam.${k}/${name}`,
          dtype: 'F32' as const,
          shape: [n],
          data: new Float32Array(n),
        })),
      ),
    });
    expect(
      carryMismatch(
        carry([
          ['a', 4],
          ['b', 6],
        ]),
        params,
      ),
    ).toBeNull();
    expect(carryMismatch(carry([['a', 4]]), params)).toMatch(/1 tensors, the model 2/);
    expect(
      carryMismatch(
        carry([
          ['a', 4],
          ['c', 6],
        ]),
        params,
      ),
    ).toMatch(/has no b/);
    expect(
      carryMismatch(
        carry([
          ['a', 4],
          ['b', 5],
        ]),
        params,
      ),
    ).toMatch(/b has 5 values, the model's 6/);
    // Through training: a state of another model is not imported, the round starts afresh.
    const other = await trainLocally({
      checkpoint: await randomCheckpoint(2),
      plan: { ...plan, fedProxMu: 0, localSteps: 1, keepOptimizer: true },
      limits: { maxLocalSteps: 100, maxBatch: 32, trainingThreads: 1 },
      data: DATA,
      seed: 1,
      backend: 'wasm',
      optimizer: carry([['a', 4]]),
    });
    expect(other.optimizerRestart).toMatch(/the kept optimizer state has 1 tensors/);
    expect(other.optimizer!.arrays.find((a) => a.name === 'step')!.data[0]).toBe(1);
  }, 60_000);
});
