import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkLayout,
  decodeSafetensors,
  encodeSafetensors,
  flattenCanonical,
  layoutOf,
  type NamedArray,
  unflattenCanonical,
} from './weights';

const arraysArb = fc
  .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_.]{0,12}$/), { minLength: 1, maxLength: 6 })
  .chain((names) =>
    fc.tuple(
      ...names.map((name) =>
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 3 }).chain((shape) =>
          fc
            .float32Array({
              minLength: shape.reduce((a, b) => a * b, 1),
              maxLength: shape.reduce((a, b) => a * b, 1),
              noNaN: true,
            })
            .map((data): NamedArray => ({ name, dtype: 'F32', shape, data })),
        ),
      ),
    ),
  );

describe('safetensors', () => {
  it('round-trips any set of arrays with metadata, and flattening follows sorted names', () => {
    fc.assert(
      fc.property(arraysArb, (arrays) => {
        const bytes = encodeSafetensors(arrays, { format: 'pt' });
        const back = decodeSafetensors(bytes);
        expect(back.metadata).toEqual({ format: 'pt' });
        const sorted = [...arrays].sort((a, b) => (a.name < b.name ? -1 : 1));
        expect(back.arrays.map((a) => a.name)).toEqual(sorted.map((a) => a.name));
        back.arrays.forEach((a, i) => {
          expect(a.shape).toEqual(sorted[i].shape);
          expect(Array.from(a.data)).toEqual(Array.from(sorted[i].data));
        });
        const flat = flattenCanonical(arrays);
        const again = unflattenCanonical(flat, layoutOf(arrays));
        expect(flattenCanonical(again)).toEqual(flat);
      }),
      { seed: 3, numRuns: 100 },
    );
  });

  it('is read by an independent parser written with numpy, and reads what numpy writes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-st-'));
    const arrays: NamedArray[] = [
      { name: 'b.weight', dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) },
      { name: 'a.bias', dtype: 'F32', shape: [2], data: Float32Array.of(-1, 0.25) },
    ];
    writeFileSync(join(dir, 'ours.safetensors'), encodeSafetensors(arrays));
    const py = `
import json, struct, sys, numpy as np
d = sys.argv[1]
raw = open(d + '/ours.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n]); base = 8 + n
out = {k: np.frombuffer(raw[base + v['data_offsets'][0]: base + v['data_offsets'][1]], dtype='<f4').reshape(v['shape']).tolist() for k, v in h.items() if k != '__metadata__'}
t = {'x': np.arange(6, dtype='<f4').reshape(3, 2) / 4, 'y': np.array([7.5], dtype='<f4')}
header, off, blobs = {}, 0, []
for k in sorted(t):
    b = t[k].tobytes(); header[k] = {'dtype': 'F32', 'shape': list(t[k].shape), 'data_offsets': [off, off + len(b)]}; off += len(b); blobs.append(b)
hj = json.dumps(header).encode()
open(d + '/numpy.safetensors', 'wb').write(struct.pack('<Q', len(hj)) + hj + b''.join(blobs))
print(json.dumps(out))`;
    const seen = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, dir], { encoding: 'utf8' }));
    expect(seen).toEqual({
      'a.bias': [-1, 0.25],
      'b.weight': [
        [1, 2, 3],
        [4, 5, 6.5],
      ],
    });
    const theirs = decodeSafetensors(new Uint8Array(readFileSync(join(dir, 'numpy.safetensors'))));
    expect(theirs.arrays.map((a) => [a.name, a.shape, Array.from(a.data)])).toEqual([
      ['x', [3, 2], [0, 0.25, 0.5, 0.75, 1, 1.25]],
      ['y', [1], [7.5]],
    ]);
  });

  it('names what is wrong with a damaged file or a mismatched model', () => {
    const good = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    expect(() => decodeSafetensors(good.subarray(0, good.length - 4), 'model.safetensors')).toThrow(
      /model\.safetensors: tensor "w" has data offsets \[0, 16\] outside the data/,
    );
    expect(() => decodeSafetensors(good.subarray(0, 5), 'm')).toThrow(/too short/);
    const badJson = Uint8Array.from(good);
    badJson[9] = 0x7b;
    badJson[10] = 0x7b;
    expect(() => decodeSafetensors(badJson, 'm')).toThrow(/not valid JSON/);
    expect(() =>
      encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(4) }]),
    ).toThrow(/tensor "w": shape \[3\] needs 3 values, got 4/);
    expect(() =>
      checkLayout(
        [{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }],
        [
          { name: 'w', shape: [2, 2] },
          { name: 'v', shape: [1] },
        ],
      ),
    ).toThrow(/tensor "w" has shape \[4\], the model expects \[2,2\]; missing tensor "v"/);
    expect(() => unflattenCanonical(new Float32Array(3), [{ name: 'w', shape: [4] }])).toThrow(
      /flat vector has 3 values; the layout needs 4/,
    );
  });
});
