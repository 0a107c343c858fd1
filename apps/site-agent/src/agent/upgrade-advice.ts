import { basename, dirname } from 'node:path';
import { PROTOCOL_VERSION } from '@fedsynth/protocol';
import { AGENT_PACKAGE, AGENT_ROOT, AGENT_VERSION } from '../version';

/** Where an agent runs from and which release it is. */
export interface Installation {
  /** The package folder (package.json, bin/, dist/). */
  root: string;
  /** fedsynth-site-agent when installed from the packed package. */
  packageName: string;
  version: string;
}

const HERE: Installation = { root: AGENT_ROOT, packageName: AGENT_PACKAGE, version: AGENT_VERSION };

/**
 * How to upgrade the agent where it is installed: npm's global install into the same prefix for
 * the packed package (install.sh's /opt/fedsynth included), an update of the checkout otherwise.
 */
export function upgradeCommand(at: Installation = HERE): string {
  if (at.packageName !== 'fedsynth-site-agent')
    return `update the fedsynth checkout at ${dirname(dirname(at.root))} (git pull, then npm ci)`;
  const modules = dirname(at.root);
  if (basename(modules) !== 'node_modules') return 'npm install -g fedsynth-site-agent@latest';
  // <prefix>/lib/node_modules/fedsynth-site-agent on Unix, <prefix>/node_modules/... on Windows.
  const prefix = basename(dirname(modules)) === 'lib' ? dirname(dirname(modules)) : dirname(modules);
  return (
    `npm install -g --prefix ${prefix} fedsynth-site-agent@latest ` +
    '(or a newer fedsynth-site-agent-<version>.tgz in its place; install.sh --package does the same)'
  );
}

const RESTART = 'then restart it (systemctl restart fedsynth-agent where install.sh set it up)';

/**
 * Which side to upgrade, and how, when the coordinator at `coordinatorUrl` speaks protocol version
 * `coordinatorProtocol` and this agent another; both versions named.
 */
export function versionAdvice(
  coordinatorUrl: string,
  coordinatorProtocol: number,
  at: Installation = HERE,
): string {
  const versions =
    `this agent (fedsynth-agent ${at.version}) speaks protocol version ${PROTOCOL_VERSION}, ` +
    `the coordinator at ${coordinatorUrl} version ${coordinatorProtocol}`;
  return coordinatorProtocol > PROTOCOL_VERSION
    ? `${versions}: upgrade the agent: ${upgradeCommand(at)}; ${RESTART}`
    : `${versions}: ask the consortium admin to upgrade the coordinator, or install the fedsynth-site-agent release that speaks protocol version ${coordinatorProtocol}`;
}

/** What the coordinator said when it refused the agent's protocol version, and what it announced. */
export interface VersionRefusal {
  coordinatorUrl: string;
  /** The version in the coordinator's login challenge; null when it sent none. */
  coordinatorProtocol: number | null;
  /** The coordinator's own text. */
  message: string;
}

/**
 * What site IT reads when the coordinator refuses this agent's protocol version: both versions,
 * which side to upgrade, and for the agent the command that does it.
 */
export function versionRefusalAdvice(r: VersionRefusal, at: Installation = HERE): string {
  const c = r.coordinatorProtocol;
  if (c !== null && c !== PROTOCOL_VERSION)
    return `the coordinator refused this agent: ${versionAdvice(r.coordinatorUrl, c, at)}`;
  const me = `this agent (fedsynth-agent ${at.version}, protocol version ${PROTOCOL_VERSION})`;
  if (/upgrade the agent/.test(r.message))
    return `the coordinator at ${r.coordinatorUrl} refused ${me} as outdated (${r.message}); upgrade the agent: ${upgradeCommand(at)}; ${RESTART}`;
  return `the coordinator at ${r.coordinatorUrl} refused ${me}: ${r.message}`;
}
