import { join } from 'node:path';
import { PROTOCOL_VERSION } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { AGENT_VERSION } from '../version';
import { upgradeCommand, versionAdvice, versionRefusalAdvice } from './upgrade-advice';

const packed = {
  root: join('/opt/fedsynth', 'lib', 'node_modules', 'fedsynth-site-agent'),
  packageName: 'fedsynth-site-agent',
  version: '1.4.0',
};
const url = 'https://fl.example.org';

describe('upgrade advice', () => {
  it('upgrades a packed install into its own npm prefix, and a checkout by updating it', () => {
    expect(upgradeCommand(packed)).toMatch(
      /^npm install -g --prefix \/opt\/fedsynth fedsynth-site-agent@latest /,
    );
    expect(
      upgradeCommand({
        root: '/work/fedsynth/apps/site-agent',
        packageName: '@fedsynth/site-agent',
        version: '1',
      }),
    ).toBe('update the fedsynth checkout at /work/fedsynth (git pull, then npm ci)');
    expect(upgradeCommand({ ...packed, root: '/srv/agent' })).toBe(
      'npm install -g fedsynth-site-agent@latest',
    );
  });

  it('names both versions and the side to upgrade', () => {
    const newer = versionAdvice(url, PROTOCOL_VERSION + 1, packed);
    expect(newer).toContain(
      `this agent (fedsynth-agent 1.4.0) speaks protocol version ${PROTOCOL_VERSION}, the coordinator at ${url} version ${PROTOCOL_VERSION + 1}: upgrade the agent: npm install -g --prefix /opt/fedsynth fedsynth-site-agent@latest`,
    );
    expect(newer).toContain('systemctl restart fedsynth-agent');
    expect(versionAdvice(url, PROTOCOL_VERSION - 1, packed)).toMatch(
      new RegExp(
        `upgrade the coordinator, or install the fedsynth-site-agent release that speaks protocol version ${PROTOCOL_VERSION - 1}$`,
      ),
    );
  });

  it("explains a refusal from the coordinator's challenge, or from its text when it announced no version", () => {
    const message =
      'this agent speaks protocol version 2; the coordinator speaks version 3: upgrade the agent (...)';
    expect(
      versionRefusalAdvice(
        { coordinatorUrl: url, coordinatorProtocol: PROTOCOL_VERSION + 1, message },
        packed,
      ),
    ).toMatch(
      /^the coordinator refused this agent: this agent \(fedsynth-agent 1\.4\.0\) speaks .*: upgrade the agent: npm install -g --prefix \/opt\/fedsynth /,
    );
    const fromText = versionRefusalAdvice({ coordinatorUrl: url, coordinatorProtocol: null, message });
    expect(fromText).toContain(
      `refused this agent (fedsynth-agent ${AGENT_VERSION}, protocol version ${PROTOCOL_VERSION}) as outdated`,
    );
    expect(fromText).toContain('upgrade the agent: ');
    expect(versionRefusalAdvice({ coordinatorUrl: url, coordinatorProtocol: null, message: 'no' })).toMatch(
      /: no$/,
    );
  });
});
