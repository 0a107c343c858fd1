/**
 * The error a test server gives when it cannot start: which server, the command that failed, what
 * it printed, and which package provides it.
 */
export class ServiceStartError extends Error {
  constructor(service: string, command: string[], output: string, install: string) {
    const printed = output.trim() ? output.trim().split('\n').slice(-40).join('\n') : '(nothing)';
    super(
      `The test suite could not start its own ${service}.\n` +
        `Command: ${command.map(quote).join(' ')}\n` +
        `Its output:\n${printed}\n` +
        `If the server is missing, install it: ${install}`,
    );
    this.name = 'ServiceStartError';
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
