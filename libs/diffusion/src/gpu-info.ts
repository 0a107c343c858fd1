import { execFileSync } from 'node:child_process';

/** A CUDA GPU as the driver reports it. */
export interface GpuInfo {
  name: string;
  memoryMiB: number;
  driver: string;
}

/** What the machine has for CUDA: its GPUs, the CUDA version the driver supports, cuDNN's. */
export interface CudaInfo {
  gpus: GpuInfo[];
  cuda: string | null;
  cudnn: string | null;
}

/** Parses `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits`. */
export function parseGpuQuery(csv: string): GpuInfo[] {
  return csv
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const parts = l.split(',').map((p) => p.trim());
      if (parts.length < 3 || !Number.isFinite(Number(parts[1])))
        throw new Error(`unexpected nvidia-smi line: "${l}"`);
      return { name: parts[0], memoryMiB: Number(parts[1]), driver: parts[2] };
    });
}

/** The "CUDA Version: 12.4" of nvidia-smi's banner (what the driver supports), or null. */
export function parseCudaVersion(banner: string): string | null {
  return /CUDA Version:\s*([\d.]+)/.exec(banner)?.[1] ?? null;
}

/** The cuDNN major version among the libraries `ldconfig -p` lists (libcudnn.so.8 -> "8"), or null. */
export function parseCudnnVersion(ldconfig: string): string | null {
  const versions = [...ldconfig.matchAll(/libcudnn\.so\.(\d+(?:\.\d+)*)/g)].map((m) => m[1]);
  if (versions.length === 0) return null;
  return versions.sort((a, b) => b.length - a.length)[0];
}

const run = (cmd: string, args: string[]): string | null => {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
};

/** Asks the driver (nvidia-smi) and the loader cache (ldconfig); empty where they are missing. */
export function cudaInfo(): CudaInfo {
  const query = run('nvidia-smi', [
    '--query-gpu=name,memory.total,driver_version',
    '--format=csv,noheader,nounits',
  ]);
  let gpus: GpuInfo[] = [];
  try {
    gpus = query ? parseGpuQuery(query) : [];
  } catch {
    gpus = [];
  }
  const banner = gpus.length ? run('nvidia-smi', []) : null;
  const ld = run('ldconfig', ['-p']) ?? run('/sbin/ldconfig', ['-p']);
  return { gpus, cuda: banner ? parseCudaVersion(banner) : null, cudnn: ld ? parseCudnnVersion(ld) : null };
}

/** One line: "NVIDIA H200 (143771 MiB), driver 550.54, CUDA 12.4, cuDNN 8.9.7". */
export function describeCuda(info: CudaInfo): string {
  if (info.gpus.length === 0) return 'no CUDA GPU found (nvidia-smi missing or failed)';
  const gpus = info.gpus.map((g) => `${g.name} (${g.memoryMiB} MiB)`).join(', ');
  return `${gpus}, driver ${info.gpus[0].driver}, CUDA ${info.cuda ?? 'unknown'}, cuDNN ${info.cudnn ?? 'not found'}`;
}
