import { spawn } from 'node:child_process';

export interface CommandResult {
  /** Exit status; null when it was killed (e.g. on timeout) or could not start. */
  status: number | null;
  /** stdout and stderr interleaved, plus the spawn error if it could not start. */
  output: string;
}

/** Runs a command to completion (or kills it after timeoutMs), collecting what it printed. */
export function runCommand(command: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ status: null, output: `${output}${err.message}` });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}
