import { parseArgs } from 'node:util';
import { asksForVersion } from '@fedsynth/cli-kit';
import { AgentConfigError } from '../config/agent-config';
import { IdentityKeyError } from '../identity/identity-key';
import { AGENT_VERSION_LINE } from '../version';
import { COMMANDS, type Command } from './commands';

const USAGE = `${AGENT_VERSION_LINE} — the fedsynth site agent

Usage: fedsynth-agent <command> [flags]
       fedsynth-agent --version     the agent's version and the protocol version it speaks

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`).join('\n')}

Run 'fedsynth-agent <command> --help' for a command's flags.
Settings come from <state dir>/agent.json, then FEDSYNTH_AGENT_* environment variables, then flags.
`;

function commandHelp(cmd: Command): string {
  const flags = Object.entries(cmd.flags).map(([name, f]) => {
    const left = `--${name}${f.type === 'string' ? ` <${f.valueName ?? 'value'}>` : ''}`;
    return `  ${left.padEnd(32)} ${f.description}${f.default !== undefined ? ` (default: ${f.default})` : ''}`;
  });
  return `Usage: fedsynth-agent ${cmd.name} [flags]\n\n${cmd.description}\n\nFlags:\n${[...flags, `  ${'--help'.padEnd(32)} show this help`].join('\n')}\n`;
}

/** Runs the CLI; returns the process exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (asksForVersion(argv)) {
    process.stdout.write(`${AGENT_VERSION_LINE}\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`fedsynth-agent: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(
      Object.entries(cmd.flags).map(([k, f]) => [
        k,
        { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) },
      ]),
    );
    const parsed = parseArgs({
      args: rest,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | string[] | undefined>;
    // A repeatable flag's values, comma-joined (as the command reads a comma-separated list).
    values = Object.fromEntries(
      Object.entries(parsed).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v]),
    );
  } catch (err) {
    process.stderr.write(`fedsynth-agent ${cmd.name}: ${(err as Error).message}\n\n${commandHelp(cmd)}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  try {
    return await cmd.run(values);
  } catch (err) {
    if (err instanceof AgentConfigError || err instanceof IdentityKeyError) {
      process.stderr.write(`fedsynth-agent ${cmd.name}: ${err.message}\n`);
      return 1;
    }
    // Expected failures carry a message that says what to do; the stack only helps when debugging.
    const e = err as Error;
    process.stderr.write(
      `fedsynth-agent ${cmd.name}: ${process.env.FEDSYNTH_DEBUG ? (e.stack ?? String(err)) : (e.message ?? String(err))}\n`,
    );
    return 1;
  }
}
