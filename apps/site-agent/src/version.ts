import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { versionLine } from '@fedsynth/cli-kit';
import { PROTOCOL_VERSION } from '@fedsynth/protocol';

/** The folder this agent runs from: its package.json, bin/ and dist/ (the same in a checkout). */
export const AGENT_ROOT = join(__dirname, '..');

const manifest = JSON.parse(readFileSync(join(AGENT_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
};

/** fedsynth-site-agent where it was installed from the packed package; @fedsynth/site-agent in a checkout. */
export const AGENT_PACKAGE = manifest.name;
/** The agent's release, sent to the coordinator at login. */
export const AGENT_VERSION = manifest.version;

/** What `fedsynth-agent --version` prints: the release and the protocol it speaks. */
export const AGENT_VERSION_LINE = versionLine('fedsynth-agent', AGENT_VERSION, PROTOCOL_VERSION);
