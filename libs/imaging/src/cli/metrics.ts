import { resolve } from 'node:path';
import { type FlagSpec, parseFlags, runCli, UsageError, usage } from '@fedsynth/cli-kit';
import { computeMetrics } from '../metrics';
import { readNifti } from '../nifti';

const FLAGS: Record<string, FlagSpec> = {
  pred: { type: 'string', valueName: 'file', description: 'synthetic CT (NIfTI, HU)' },
  ref: { type: 'string', valueName: 'file', description: 'reference CT (NIfTI, HU)' },
  mask: {
    type: 'string',
    valueName: 'file',
    description: 'body mask (NIfTI, non-zero inside); all voxels when absent',
  },
};
const HELP = usage(
  'fedsynth-metrics',
  '--pred P --ref R [--mask M]',
  'Prints one JSON object with MAE (HU), PSNR (dB), SSIM, Pearson and per-tissue MAE of a\nsynthetic CT against the reference, computed as in the SynthRAD2023 challenge.',
  FLAGS,
);

export async function main(argv: string[]): Promise<void> {
  await runCli('fedsynth-metrics', HELP, async () => {
    const { values } = parseFlags(argv, FLAGS);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!values.pred) throw new UsageError('--pred is required');
    if (!values.ref) throw new UsageError('--ref is required');
    const [pred, ref, mask] = await Promise.all([
      readNifti(resolve(String(values.pred))),
      readNifti(resolve(String(values.ref))),
      values.mask ? readNifti(resolve(String(values.mask))) : undefined,
    ]);
    if (pred.dims.some((d, i) => d !== ref.dims[i])) {
      throw new Error(`--pred is ${pred.dims.join('x')} but --ref is ${ref.dims.join('x')}`);
    }
    const m = computeMetrics(pred.data, ref.data, {
      dims: ref.dims,
      mask: mask ? Uint8Array.from(mask.data, (v) => (v > 0 ? 1 : 0)) : undefined,
    });
    process.stdout.write(`${JSON.stringify(m)}\n`);
    return 0;
  });
}
