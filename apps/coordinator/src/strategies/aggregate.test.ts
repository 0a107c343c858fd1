import { parseFederationConfig } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { createStrategy } from './index';

const strategyOf = (strategy: Record<string, unknown>) =>
  createStrategy(parseFederationConfig({ strategy }).strategy);

describe('aggregate', () => {
  it.each(['fedavg', 'fedavgm', 'fedadam', 'fedyogi'])(
    '%s refuses NaN / Inf deltas and wrong lengths, naming them',
    (kind) => {
      const sut = strategyOf({ kind });
      const w = new Float32Array(3);
      expect(() => sut.aggregate(w, Float32Array.of(0, Number.NaN, 0))).toThrow('meanDelta value 1 is NaN');
      expect(() => sut.aggregate(w, Float32Array.of(0, 0, -Infinity))).toThrow(
        'meanDelta value 2 is -Infinity',
      );
      expect(() => sut.aggregate(w, new Float32Array(2))).toThrow('meanDelta has 2 values; the model has 3');
      expect(() => sut.aggregate([0, 0, 0] as never, w)).toThrow('weights must be a Float32Array');
    },
  );

  it('leaves its inputs and its state untouched when it refuses a step', () => {
    // Arrange
    const sut = strategyOf({ kind: 'fedadam' });
    const w = Float32Array.of(1, 2);
    sut.aggregate(w, Float32Array.of(0.1, 0.1));
    const before = sut.saveState();

    // Act
    expect(() => sut.aggregate(w, Float32Array.of(0.1, Number.NaN))).toThrow(/NaN/);

    // Assert
    expect(sut.saveState()).toEqual(before);
    expect(w).toEqual(Float32Array.of(1, 2));
  });

  it('refuses a step whose weights overflow float32', () => {
    const sut = strategyOf({ kind: 'fedavg', lr: 100 });
    expect(() => sut.aggregate(Float32Array.of(3e38), Float32Array.of(1e37))).toThrow(
      'the fedavg step made weight 0 Infinity; refusing it',
    );
    expect(sut.saveState().steps).toBe(0);
  });

  it('refuses an unknown strategy kind', () => {
    expect(() => createStrategy({ kind: 'sgd' } as never)).toThrow('unknown strategy kind sgd');
  });
});
