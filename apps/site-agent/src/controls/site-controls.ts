import { type AgentConfig, type AgentConfigSources, loadAgentConfig } from '../config/agent-config';
import { isWithinWindow, parseTrainingWindow } from './training-window';

/** The settings that decide whether the site takes part in a round. */
export type SiteControls = Pick<AgentConfig, 'optOut' | 'paused' | 'trainingWindow'>;

/**
 * The site's settings as they stand now: agent.json read again, under the environment and flags the
 * daemon started with (`sources`), in the same precedence as at start. When they no longer load
 * (the file was broken meanwhile), the settings the daemon started with hold and `onError` says why.
 */
export function readControls(
  sources: AgentConfigSources,
  started: AgentConfig,
  onError: (err: Error) => void = () => undefined,
): AgentConfig {
  try {
    return loadAgentConfig(sources);
  } catch (err) {
    onError(err as Error);
    return started;
  }
}

/** Why the site declines a round now, or null when it takes part. */
export function declineReason(c: SiteControls, opts: { hasData: boolean; now?: Date }): string | null {
  if (c.optOut) return 'the site has opted out of training';
  if (c.paused) return 'the site has paused training';
  if (!isWithinWindow(parseTrainingWindow(c.trainingWindow), opts.now))
    return `outside the site's training window (${c.trainingWindow})`;
  if (!opts.hasData) return 'no data directory is configured';
  return null;
}
