import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What the daemon last said about itself; `fedsynth-agent status` reads it. */
export interface AgentStatus {
  pid: number;
  updatedAt: string;
  connection: 'connecting' | 'connected' | 'disconnected' | 'refused' | 'stopped';
  coordinatorUrl: string;
  lastError: string | null;
  backend: string | null;
  device: string | null;
  currentRound: { roundId: string; stage: string; startedAt: string } | null;
  lastRound: {
    roundId: string;
    outcome: 'uploaded' | 'declined' | 'failed';
    reason?: string;
    loss?: number;
    steps?: number;
    epsilon?: number | null;
    finishedAt: string;
  } | null;
  lastEval: {
    roundId: string;
    modelHash: string;
    mae: number;
    psnr: number;
    ssim: number;
    count: number;
  } | null;
  latestModel: string | null;
  roundsTaken: number;
}

export function statusPath(stateDir: string): string {
  return join(stateDir, 'status.json');
}

/** Writes the status atomically (readers never see half a file). */
export function writeStatus(stateDir: string, status: AgentStatus): void {
  const path = statusPath(stateDir);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(status, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function readStatus(stateDir: string): AgentStatus | null {
  try {
    return JSON.parse(readFileSync(statusPath(stateDir), 'utf8')) as AgentStatus;
  } catch {
    return null;
  }
}

/** Whether the process that wrote a status is still running. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
