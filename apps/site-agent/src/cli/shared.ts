import { join } from 'node:path';

/** A command-line flag of the agent. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  short?: string;
  valueName?: string;
  default?: string;
  /** May be given more than once; the values reach the command comma-joined. */
  multiple?: boolean;
}

/** One `fedsynth-agent` command. */
export interface Command {
  name: string;
  summary: string;
  description: string;
  flags: Record<string, FlagSpec>;
  run(values: Record<string, string | boolean | undefined>): Promise<number>;
}

/** --state-dir, shared by every command. */
export const STATE_DIR_FLAG: FlagSpec = {
  type: 'string',
  valueName: 'dir',
  description: 'agent state directory (identity key, config, audit log; $FEDSYNTH_AGENT_HOME)',
  default: '~/.fedsynth-agent',
};

/** The identity key's path inside a state directory. */
export function identityPath(stateDir: string): string {
  return join(stateDir, 'identity.json');
}
