import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

/** The built CLI (`npx tsc -b` first), as a site runs it. */
export const AGENT_BIN = resolve(__dirname, '..', '..', 'bin', 'fedsynth-agent.js');

/**
 * Runs `fedsynth-agent <args>` in its own process, with no FEDSYNTH_AGENT_* or FEDSYNTH_LOG_*
 * settings from this environment (only those in `env`); resolves with its exit code and output.
 * The timeout only turns a hang into a failure.
 */
export function runAgent(
  args: string[],
  timeoutMs = 120_000,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('FEDSYNTH_AGENT_') && !k.startsWith('FEDSYNTH_LOG_'),
    ),
  );
  return new Promise((done) => {
    execFile(
      process.execPath,
      [AGENT_BIN, ...args],
      { env: { ...inherited, ...env }, timeout: timeoutMs },
      (error, out, err) => {
        done({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, out, err });
      },
    );
  });
}
