/**
 * Reading and SSIM speed against the outside tools, measured in the same run:
 * - a 512x512x300 int16 .nii.gz read into float32, ours (readNifti) against nibabel
 *   (`get_fdata(dtype=float32)`), each in a fresh process, median of 3; our peak memory while reading
 *   (max RSS above the process baseline) against the size of the float32 volume;
 * - SSIM of two 256x256x128 volumes, ours against scikit-image's structural_similarity, median of 3.
 * Prints, last, one JSON object. Run: npm run bench -w @fedsynth/imaging
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maskedSsim } from '../metrics';
import { writeNifti } from '../nifti';
import { gaussian, mulberry32 } from '../rng';
import { diagonalAffine } from '../volume';

const PY = '/usr/bin/python3';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function ctLike(nx: number, ny: number, nz: number, seed: number): Float32Array {
  const g = gaussian(mulberry32(seed));
  const out = new Float32Array(nx * ny * nz);
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const r = Math.hypot((x - nx / 2) / (nx * 0.4), (y - ny / 2) / (ny * 0.33));
        const base = r > 1 ? -1000 : r > 0.93 ? 1200 : 40 + 30 * Math.sin(x / 9 + z / 13);
        out[i] = Math.round(base + 12 * g());
      }
    }
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-imaging-bench-'));
  try {
    const dims: [number, number, number] = [512, 512, 300];
    const file = join(dir, 'ct.nii.gz');
    process.stderr.write('writing a 512x512x300 int16 volume ...\n');
    const vol = {
      data: ctLike(...dims, 1),
      dims,
      spacing: [0.8, 0.8, 1] as [number, number, number],
      affine: diagonalAffine([0.8, 0.8, 1]),
    };
    await writeNifti(file, vol, { datatype: 'int16' });
    vol.data = new Float32Array(0);
    {
      const ourScript = `const { readNifti } = require(${JSON.stringify(join(__dirname, '..', 'nifti.js'))});
const base = process.memoryUsage().rss;
const t = process.hrtime.bigint();
readNifti(${JSON.stringify(file)}).then((v) => {
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(JSON.stringify({ ms, baseRss: base, maxRss: process.resourceUsage().maxRSS * 1024, n: v.data.length }));
});`;
      const pyScript = `import time, json, numpy as np, nibabel as nib
t = time.perf_counter(); d = nib.load(${JSON.stringify(file)}).get_fdata(dtype=np.float32); ms = (time.perf_counter() - t) * 1000
print(json.dumps({'ms': ms, 'n': int(d.size)}))`;
      const ours: { ms: number; baseRss: number; maxRss: number; n: number }[] = [];
      const theirs: number[] = [];
      for (let r = 0; r < 3; r++) {
        ours.push(JSON.parse(execFileSync(process.execPath, ['-e', ourScript], { encoding: 'utf8' })));
        theirs.push(JSON.parse(execFileSync(PY, ['-c', pyScript], { encoding: 'utf8' })).ms);
      }
      const float32Bytes = dims[0] * dims[1] * dims[2] * 4;
      const peak = Math.max(...ours.map((o) => o.maxRss - o.baseRss));
      // SSIM on 256x256x128.
      const sd: [number, number, number] = [256, 256, 128];
      const a = ctLike(...sd, 2);
      const g = gaussian(mulberry32(3));
      const b = Float32Array.from(a, (v) => v + 40 * g());
      const fa = join(dir, 'a.f32');
      const fb = join(dir, 'b.f32');
      writeFileSync(fa, Buffer.from(a.buffer));
      writeFileSync(fb, Buffer.from(b.buffer));
      const oursSsim: number[] = [];
      let value = 0;
      for (let r = 0; r < 3; r++) {
        const t = process.hrtime.bigint();
        value = maskedSsim(b, a, sd);
        oursSsim.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      const ssimPy = `import time, json, numpy as np
from skimage.metrics import structural_similarity
a = np.fromfile(${JSON.stringify(fa)}, dtype=np.float32).reshape(128, 256, 256).astype(np.float64)
b = np.fromfile(${JSON.stringify(fb)}, dtype=np.float32).reshape(128, 256, 256).astype(np.float64)
a = np.clip(a, -1024, 3000) + 1024; b = np.clip(b, -1024, 3000) + 1024
ts = []
for _ in range(3):
    t = time.perf_counter(); v, m = structural_similarity(a, b, data_range=4024., full=True); ts.append((time.perf_counter() - t) * 1000)
print(json.dumps({'ms': sorted(ts)[1], 'value': float(v)}))`;
      const sk = JSON.parse(execFileSync(PY, ['-c', ssimPy], { encoding: 'utf8' }));
      const result = {
        niftiFileMB: Number((statSync(file).size / 1e6).toFixed(1)),
        niftiReadMs: Math.round(median(ours.map((o) => o.ms))),
        nibabelReadMs: Math.round(median(theirs)),
        niftiReadRatio: Number((median(ours.map((o) => o.ms)) / median(theirs)).toFixed(3)),
        readPeakMB: Math.round(peak / 1e6),
        float32VolumeMB: Math.round(float32Bytes / 1e6),
        readPeakOverVolume: Number((peak / float32Bytes).toFixed(2)),
        ssimMs: Math.round(median(oursSsim)),
        skimageSsimMs: Math.round(sk.ms),
        ssimRatio: Number((median(oursSsim) / sk.ms).toFixed(3)),
        ssimAbsDiff: Math.abs(value - sk.value),
      };
      console.log(JSON.stringify(result));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
