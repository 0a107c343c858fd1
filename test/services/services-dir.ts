import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'fedsynth-test-services-';
const OWNER = 'owner.pid';

/** A fresh temporary folder for this run's servers, marked with the pid of the process owning it. */
export function makeServicesDir(): string {
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, OWNER), String(process.pid));
  return dir;
}

export function removeServicesDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Folders left by earlier runs whose owning process is gone (killed with SIGKILL, say): `stop` ends
 * whatever still runs there, then the folder is removed.
 */
export function reapLeftoverServicesDirs(stop: (dir: string) => void): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((name) => name.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number.parseInt(readFileSync(join(dir, OWNER), 'utf8'), 10);
      if (isAlive(owner)) continue;
      stop(dir);
      removeServicesDir(dir);
    } catch {
      // Not ours to reap (another user's, or being created right now).
    }
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
