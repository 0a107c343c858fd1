/**
 * @fedsynth/cli-kit — what every fedsynth command-line tool shares: flag parsing with typed specs,
 * help text, usage errors and exit codes, and progress bars (structured lines off a terminal).
 */
export {
  asksForVersion,
  type FlagSpec,
  numFlag,
  oneOf,
  parseFlags,
  runCli,
  UsageError,
  usage,
  versionLine,
} from './cli-kit';
export { createProgress, type Progress } from './progress';
