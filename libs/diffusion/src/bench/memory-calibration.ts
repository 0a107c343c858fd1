/**
 * Fits the memory planner's coefficients (memory-plan.ts) to peaks measured on this backend for
 * the default U-Net and a variant with attention at its lower levels: per pass kind, least squares of the relative error of the bytes per slice
 * predicted from the network's features, at 32 to 256 px. Prints each measurement and, last, the coefficients as one JSON object.
 * Run: npm run calibrate:memory [-- --backend wasm]
 */
import { parseArgs } from 'node:util';
import { type BackendChoice, selectBackend } from '../backend';
import { measurePeakBytes } from '../memory-measure';
import { memoryFeatures, type PassKind } from '../memory-plan';
import { DEFAULT_UNET_CONFIG, type UNetConfig, unetConfigFor } from '../unet';

/**
 * The default U-Net, the same with attention at its two lower levels (large attention matrices)
 * and with one and three residual blocks per level (more or less of the memory in the blocks).
 */
const NETWORKS: Record<PassKind, [UNetConfig, number][]> = (() => {
  const attentive = { ...DEFAULT_UNET_CONFIG, attentionLevels: [false, true, true] };
  const shallow = unetConfigFor(DEFAULT_UNET_CONFIG.channels, 1);
  const deep = unetConfigFor(DEFAULT_UNET_CONFIG.channels, 3);
  const base = (sizes: number[]) => sizes.map((s) => [DEFAULT_UNET_CONFIG, s] as [UNetConfig, number]);
  const variants = (a: number, b: number): [UNetConfig, number][] => [
    [attentive, a],
    [attentive, b],
    [shallow, a],
    [shallow, b],
    [deep, a],
    [deep, b],
  ];
  return {
    train: [...base([32, 64, 96, 128]), ...variants(32, 64)],
    checkpointed: [...base([32, 64, 128, 256]), ...variants(64, 128)],
    forward: [...base([32, 64, 128, 256]), ...variants(64, 128)],
  };
})();

/** Least squares for y ~ X c, through the normal equations. */
function leastSquares(X: number[][], y: number[]): number[] {
  const n = X[0].length;
  const idx = [...Array(n).keys()];
  const A = idx.map((i) => idx.map((j) => X.reduce((s, r) => s + r[i] * r[j], 0)));
  const b = idx.map((i) => X.reduce((s, r, k) => s + r[i] * y[k], 0));
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    [A[c], A[p]] = [A[p], A[c]];
    [b[c], b[p]] = [b[p], b[c]];
    for (let r = c + 1; r < n; r++) {
      const f = A[r][c] / A[c][c];
      for (let k = c; k < n; k++) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r];
    for (let k = r + 1; k < n; k++) s -= A[r][k] * x[k];
    x[r] = s / A[r][r];
  }
  return x;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { backend: { type: 'string', default: 'wasm' } } });
  await selectBackend(values.backend as BackendChoice);
  const out: Record<string, number[]> = {};
  for (const kind of Object.keys(NETWORKS) as PassKind[]) {
    const X: number[][] = [];
    const y: number[] = [];
    for (const [config, size] of NETWORKS[kind]) {
      const bytes = await measurePeakBytes(config, size, 1, kind);
      process.stderr.write(
        `${kind} ${size} px, ${config.numResBlocks} blocks, attention ${config.attentionLevels}: ${(bytes / 2 ** 20).toFixed(1)} MiB per slice\n`,
      );
      // Each row divided by its measurement: the fit minimizes relative, not absolute, errors.
      const y0 = bytes / 4;
      X.push(memoryFeatures(config, size, kind).map((f) => f / y0));
      y.push(1);
    }
    out[kind] = leastSquares(X, y).map((c) => Number(c.toPrecision(4)));
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
