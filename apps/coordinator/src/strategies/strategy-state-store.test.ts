import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors } from '@fedsynth/diffusion/weights';
import { parseFederationConfig } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { createStrategy } from './index';
import { StrategyStateStore } from './strategy-state-store';

const SHA = 'ab'.repeat(32);
const strategyOf = (strategy: Record<string, unknown>) =>
  createStrategy(parseFederationConfig({ strategy }).strategy);
const fresh = () => new StrategyStateStore(mkdtempSync(join(tmpdir(), 'strategy-store-')));

describe('StrategyStateStore', () => {
  it('returns null for a checkpoint without a saved state', async () => {
    expect(await fresh().load(SHA)).toBeNull();
  });

  it('writes <dir>/<sha[0:2]>/<sha>.strategy.safetensors and reads it back exactly, leaving no temp file', async () => {
    // Arrange
    const sut = fresh();
    const adam = strategyOf({ kind: 'fedadam' });
    adam.aggregate(Float32Array.of(1, 2, 3), Float32Array.of(0.1, -0.2, 0.3));
    adam.aggregate(Float32Array.of(1, 2, 3), Float32Array.of(0.3, 0.2, -0.1));

    // Act
    await sut.save(SHA, adam);
    const loaded = await sut.load(SHA);

    // Assert
    expect(sut.pathOf(SHA)).toMatch(new RegExp(`/ab/${SHA}\\.strategy\\.safetensors$`));
    expect(loaded).toEqual(adam.saveState());
    expect(loaded?.steps).toBe(2);
    const dir = sut.pathOf(SHA).slice(0, -`/ab/${SHA}.strategy.safetensors`.length);
    expect(readdirSync(join(dir, 'incoming'))).toEqual([]);
  });

  it('refuses a sha256 that is not 64 hex digits (no path escapes)', async () => {
    await expect(fresh().load('../../etc/passwd')).rejects.toThrow(/64 lowercase hex/);
  });

  it('refuses a file that is not a strategy state, naming the file', async () => {
    const sut = fresh();
    await sut.save(SHA, strategyOf({ kind: 'fedavg' }));
    writeFileSync(sut.pathOf(SHA), encodeSafetensors([], { format: 'something-else' }));
    await expect(sut.load(SHA)).rejects.toThrow(new RegExp(`${SHA}.strategy.safetensors: metadata format`));
    writeFileSync(sut.pathOf(SHA), new Uint8Array(5));
    await expect(sut.load(SHA)).rejects.toThrow(/too short/);
  });
});

describe('loading a state', () => {
  const adamState = () => {
    const s = strategyOf({ kind: 'fedadam' });
    s.aggregate(new Float32Array(5), new Float32Array(5).fill(0.01));
    return s.saveState();
  };

  it('refuses a state of another kind, naming both', () => {
    expect(() => strategyOf({ kind: 'fedyogi' }).loadState(adamState())).toThrow(
      'cannot load strategy state: it is a fedadam state; this strategy is fedyogi',
    );
    const avg = strategyOf({ kind: 'fedavg' }).saveState();
    expect(() => strategyOf({ kind: 'fedavgm' }).loadState(avg)).toThrow(
      /fedavg state; this strategy is fedavgm/,
    );
  });

  it('refuses a state of another length, at load and at the next step', () => {
    expect(() => strategyOf({ kind: 'fedadam' }).loadState(adamState(), 6)).toThrow(
      'cannot load strategy state: vector m holds 5 values; expected 6',
    );
    const sut = strategyOf({ kind: 'fedadam' });
    sut.loadState(adamState());
    expect(() => sut.aggregate(new Float32Array(6), new Float32Array(6))).toThrow(
      'the fedadam state holds 5 values; the model has 6',
    );
  });

  it('refuses vectors that are missing, unequal or not finite', () => {
    const s = adamState();
    const sut = strategyOf({ kind: 'fedadam' });
    expect(() => sut.loadState({ ...s, tensors: [s.tensors[0]] })).toThrow(
      /holds vectors \[m\]; a fedadam state holds \[m, v\]/,
    );
    const short = { ...s, tensors: [s.tensors[0], { name: 'v', data: new Float32Array(4) }] };
    expect(() => sut.loadState(short)).toThrow('vector v holds 4 values; expected 5');
    const nan = {
      ...s,
      tensors: [s.tensors[0], { name: 'v', data: Float32Array.of(1, 1, Number.NaN, 1, 1) }],
    };
    expect(() => sut.loadState(nan)).toThrow('vector v value 2 is NaN');
    expect(() => sut.loadState({ ...s, tensors: [], steps: 3 })).toThrow('3 steps but no state vectors');
  });
});
