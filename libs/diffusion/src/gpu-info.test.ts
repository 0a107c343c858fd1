import { describe, expect, it } from 'vitest';
import { describeCuda, parseCudaVersion, parseCudnnVersion, parseGpuQuery } from './gpu-info';

// Outputs as nvidia-smi and ldconfig print them (from a two-GPU host).
const QUERY = 'NVIDIA H200, 143771, 550.54.15\nNVIDIA H200, 143771, 550.54.15\n';
const BANNER = `+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+`;
const LDCONFIG = `1234 libs found in cache \`/etc/ld.so.cache'
	libcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8
	libcudnn.so.8.9.7 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8.9.7
	libcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12`;

describe('CUDA device information', () => {
  it('reads GPUs, the CUDA version and the cuDNN version from nvidia-smi and ldconfig', () => {
    const gpus = parseGpuQuery(QUERY);
    expect(gpus).toEqual([
      { name: 'NVIDIA H200', memoryMiB: 143771, driver: '550.54.15' },
      { name: 'NVIDIA H200', memoryMiB: 143771, driver: '550.54.15' },
    ]);
    expect(parseCudaVersion(BANNER)).toBe('12.4');
    expect(parseCudnnVersion(LDCONFIG)).toBe('8.9.7');
    expect(parseCudnnVersion('libcudart.so.12 => x')).toBeNull();
    expect(describeCuda({ gpus: gpus.slice(0, 1), cuda: '12.4', cudnn: '8.9.7' })).toBe(
      'NVIDIA H200 (143771 MiB), driver 550.54.15, CUDA 12.4, cuDNN 8.9.7',
    );
    expect(describeCuda({ gpus: [], cuda: null, cudnn: null })).toMatch(/no CUDA GPU/);
    expect(() => parseGpuQuery('No devices were found')).toThrow(/unexpected nvidia-smi line/);
  });
});
