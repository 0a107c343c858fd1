import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type AgentConfig, configPath, defaultStateDir, loadAgentConfig } from '../config/agent-config';
import {
  fingerprint,
  generateIdentityKey,
  readIdentityKey,
  writeIdentityKey,
} from '../identity/identity-key';
import { LOCAL_MODEL_COMMANDS } from './local-model-commands';
import { RUN_COMMANDS } from './run-commands';
import { type Command, identityPath, STATE_DIR_FLAG } from './shared';

export { type Command, type FlagSpec, identityPath } from './shared';

const init: Command = {
  name: 'init',
  summary: 'make the site identity key and a config file',
  description:
    'Creates the Ed25519 identity key (mode 0600) and agent.json in the state directory. The key is the\n' +
    "site's identity at the coordinator: back it up; losing it means enrolling again.",
  flags: {
    'state-dir': STATE_DIR_FLAG,
    'site-name': {
      type: 'string',
      valueName: 'name',
      description: 'name of this site (letters, digits, . _ -)',
    },
    'data-dir': {
      type: 'string',
      valueName: 'dir',
      description: 'folder with the local subjects (SynthRAD layout)',
    },
    'coordinator-url': {
      type: 'string',
      valueName: 'url',
      description: 'coordinator address, e.g. https://fl.example.org',
    },
    'training-window': {
      type: 'string',
      valueName: 'HH:MM-HH:MM',
      description: 'accept rounds only in this daily window',
      default: 'always',
    },
    force: { type: 'boolean', description: 'replace an existing config (never the identity key)' },
  },
  async run(v) {
    const stateDir = resolve(String(v['state-dir'] ?? defaultStateDir()));
    const file = configPath(stateDir);
    if (existsSync(file) && !v.force) {
      process.stderr.write(
        `fedsynth-agent init: ${file} already exists (use --force to replace the config)\n`,
      );
      return 1;
    }
    const config: AgentConfig = loadAgentConfig({
      stateDir,
      env: {},
      flags: {
        siteName: v['site-name'] as string | undefined,
        dataDir: v['data-dir'] ? resolve(String(v['data-dir'])) : undefined,
        coordinatorUrl: v['coordinator-url'] as string | undefined,
        trainingWindow: v['training-window'] as string | undefined,
      },
    });
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const keyFile = identityPath(stateDir);
    let created = false;
    if (!existsSync(keyFile)) {
      await writeIdentityKey(keyFile, generateIdentityKey());
      created = true;
    }
    const key = await readIdentityKey(keyFile);
    const { stateDir: _omit, ...persisted } = config;
    await writeFile(file, `${JSON.stringify(persisted, null, 2)}\n`, { mode: 0o600 });
    process.stdout.write(
      `${created ? 'created' : 'kept'} identity key ${keyFile}\n` +
        `  fingerprint ${fingerprint(key.publicKey)}\n` +
        `wrote ${file}\n` +
        `next: fedsynth-agent enroll --coordinator <url> --token <one-time token>\n`,
    );
    return 0;
  },
};

export const COMMANDS: Command[] = [init, ...RUN_COMMANDS, ...LOCAL_MODEL_COMMANDS];
