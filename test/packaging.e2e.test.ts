import { type ChildProcess, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { writePhantomDataset } from '@fedsynth/imaging';
import { PROTOCOL_VERSION } from '@fedsynth/protocol';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECKOUT,
  cleanEnv,
  installGlobally,
  type PackedPackage,
  packCheckout,
  type Run,
  run,
  runInstallScript,
} from './packed-install';

/**
 * The installable packages as a site gets them: `npm run pack`, each tarball installed with
 * `npm install -g --prefix` into an empty folder outside the checkout (the agent's by
 * deploy/agent/install.sh --no-service, which runs that command, init and doctor), and run from
 * there with a home, state and working directory of their own: the agent's --version, its
 * fedsynth-phantoms, init on phantom data and doctor; the coordinator's --version, serve on its
 * embedded database, /health, its refusal of an agent that speaks an older protocol, and the packed
 * agent's doctor against it.
 */
const versionOf = (dir: string) =>
  (JSON.parse(readFileSync(join(CHECKOUT, dir, 'package.json'), 'utf8')) as { version: string }).version;
const AGENT_VERSION = versionOf('apps/site-agent');
const COORDINATOR_VERSION = versionOf('apps/coordinator');

// Under the temporary folder, resolved: macOS and some CI runners link /tmp elsewhere.
const work = realpathSync(mkdtempSync(join(tmpdir(), 'fedsynth-packaging-')));
const home = join(work, 'home');
const agentPrefix = join(work, 'agent');
const coordinatorPrefix = join(work, 'coordinator');
const agentState = join(work, 'agent-state');
const agentBin = (name: string) => join(agentPrefix, 'bin', name);
const agentEnv = (extra: Record<string, string> = {}) =>
  cleanEnv(home, { FEDSYNTH_AGENT_HOME: agentState, ...extra });
const installData = join(work, 'install-data');
let packed: Map<string, PackedPackage>;
let installScript: Run;
let coordinator: ChildProcess | undefined;

beforeAll(async () => {
  mkdirSync(home);
  const t0 = Date.now();
  packed = await packCheckout(join(work, 'packages'));
  await writePhantomDataset({
    out: installData,
    subjects: 2,
    seed: 1,
    profile: 'site-a',
    size: 16,
    slices: 3,
  });
  const t1 = Date.now();
  [installScript] = await Promise.all([
    runInstallScript(
      [
        ...['--package', packed.get('fedsynth-site-agent')!.file, '--prefix', agentPrefix],
        ...['--state-dir', agentState, '--site-name', 'x', '--data-dir', installData],
        ...['--coordinator', 'http://127.0.0.1:9'],
      ],
      work,
    ),
    installGlobally(packed.get('fedsynth-coordinator')!.file, coordinatorPrefix, work),
  ]);
  console.info(
    `packed in ${((t1 - t0) / 1000).toFixed(1)} s, installed both in ${((Date.now() - t1) / 1000).toFixed(1)} s: ${[
      ...packed.values(),
    ]
      .map((p) => `${p.name} ${(p.bytes / 1024).toFixed(0)} kB (${p.files} files)`)
      .join(', ')}`,
  );
}, 900_000);

afterAll(() => {
  if (coordinator?.exitCode === null) coordinator.kill('SIGKILL');
  // The two installs are ~1 GB in ~60,000 files, which takes a minute or more to delete on a busy
  // disk: the removal goes on in its own process instead of holding up the tests.
  const rm = spawn('rm', ['-rf', work], { detached: true, stdio: 'ignore' });
  rm.on('error', () => rmSync(work, { recursive: true, force: true }));
  rm.unref();
});

/** Where npm installed a package in `prefix`, and the module paths node resolves from there. */
function installedAt(prefix: string, name: string): string {
  return join(prefix, 'lib', 'node_modules', name);
}
async function resolvedFrom(dir: string, modules: string[]): Promise<string[]> {
  const r = await run(
    process.execPath,
    ['-e', `for (const m of ${JSON.stringify(modules)}) console.log(require.resolve(m))`],
    { cwd: dir, env: cleanEnv(home), timeoutMs: 30_000 },
  );
  expect(r.code, r.err).toBe(0);
  return r.out.trim().split('\n');
}

describe('the packed site agent', () => {
  const state = agentState;
  const env = () => agentEnv();

  it('install.sh installs the package into an empty prefix, inits the site and runs doctor', () => {
    expect(installScript.code, installScript.err).toBe(0);
    expect(installScript.out).toContain(
      `installing ${packed.get('fedsynth-site-agent')!.file} into ${agentPrefix} ...`,
    );
    expect(installScript.out).toContain(
      `installed fedsynth-agent ${AGENT_VERSION} (protocol ${PROTOCOL_VERSION})`,
    );
    expect(installScript.out).toContain(`wrote ${join(agentState, 'agent.json')}`);
    expect(installScript.out).toMatch(/^ok {4}data {10}.*2 subjects, 0 problem/m);
    // No coordinator listens at that address: doctor says so, and install.sh goes on.
    expect(installScript.out).toMatch(/^FAIL {2}coordinator {3}http:\/\/127\.0\.0\.1:9: unreachable/m);
    expect(installScript.err).toContain('install.sh: doctor reported problems (above)');
  });

  it('ships only what runs: compiled code of the app and its bundled libraries, no tests, benches, maps or types', async () => {
    const p = packed.get('fedsynth-site-agent')!;
    expect(p.bundled).toEqual(
      expect.arrayContaining([
        '@fedsynth/cli-kit',
        '@fedsynth/secure-agg',
        '@fedsynth/protocol',
        '@fedsynth/imaging',
        '@fedsynth/diffusion',
      ]),
    );
    const list = await run('tar', ['-tzf', p.file], { cwd: work, timeoutMs: 30_000 });
    const entries = list.out.trim().split('\n');
    expect(entries).toContain('package/node_modules/@fedsynth/protocol/dist/index.js');
    expect(entries).toContain('package/deploy/install.sh');
    expect(
      entries.filter((e) => /\.test\.js$|\.map$|\.d\.ts$|\/(bench|testing)\/|\.tsbuildinfo$/.test(e)),
    ).toEqual([]);
    const manifest = JSON.parse(
      readFileSync(join(installedAt(agentPrefix, 'fedsynth-site-agent'), 'package.json'), 'utf8'),
    );
    expect(manifest.private).toBeUndefined();
    expect(Object.keys(manifest.optionalDependencies)).toEqual(
      expect.arrayContaining(['@tensorflow/tfjs-node-gpu', 'webgpu']),
    );
  });

  it('prints its version and protocol version', async () => {
    const r = await run(agentBin('fedsynth-agent'), ['--version'], {
      cwd: work,
      env: env(),
      timeoutMs: 30_000,
    });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`fedsynth-agent ${AGENT_VERSION} (protocol ${PROTOCOL_VERSION})\n`);
    const help = await run(agentBin('fedsynth-agent'), ['--help'], {
      cwd: work,
      env: env(),
      timeoutMs: 30_000,
    });
    expect(help.out).toContain(`fedsynth-agent ${AGENT_VERSION} (protocol ${PROTOCOL_VERSION})`);
    expect(help.out).toContain('--version');
  });

  it('runs the installed code: its libraries and dependencies resolve inside the prefix, none links to the checkout', async () => {
    const dir = installedAt(agentPrefix, 'fedsynth-site-agent');
    const paths = await resolvedFrom(dir, [
      '@fedsynth/diffusion',
      '@fedsynth/protocol',
      'socket.io-client',
      '@tensorflow/tfjs-core',
    ]);
    for (const p of paths) expect(p.startsWith(dir + sep), p).toBe(true);
    expect(lstatSync(join(dir, 'node_modules', '@fedsynth', 'protocol')).isSymbolicLink()).toBe(false);
  });

  it('makes phantom data with its fedsynth-phantoms, inits on it again, and doctor passes the local checks', async () => {
    const data = join(work, 'data');
    const phantoms = await run(
      agentBin('fedsynth-phantoms'),
      ['--subjects', '2', '--size', '16', '--slices', '3', '--out', data],
      { cwd: work, env: env(), timeoutMs: 120_000 },
    );
    expect(phantoms.code, phantoms.err).toBe(0);
    const init = await run(
      agentBin('fedsynth-agent'),
      ['init', '--site-name', 'x', '--data-dir', data, '--force'],
      {
        cwd: work,
        env: env(),
        timeoutMs: 60_000,
      },
    );
    expect(init.code, init.err).toBe(0);
    // Over install.sh's config; the identity key it made is kept.
    expect(init.out).toContain(`kept identity key ${join(state, 'identity.json')}`);
    const doctor = await run(agentBin('fedsynth-agent'), ['doctor', '--json'], {
      cwd: work,
      env: env(),
      timeoutMs: 180_000,
    });
    // Not enrolled, no coordinator: doctor exits 1 for those two only.
    expect(doctor.code, doctor.err).toBe(1);
    const { checks } = JSON.parse(doctor.out) as {
      checks: { name: string; ok: boolean | 'warn'; detail: string }[];
    };
    const check = (name: string) => checks.find((c) => c.name === name);
    for (const name of ['node', 'agent', 'config', 'identity key', 'backend', 'data', 'disk'])
      expect(check(name)?.ok, `${name}: ${check(name)?.detail}`).toBe(true);
    expect(check('agent')?.detail).toBe(
      `fedsynth-agent ${AGENT_VERSION} (protocol ${PROTOCOL_VERSION}), running from ${installedAt(agentPrefix, 'fedsynth-site-agent')}`,
    );
    expect(check('config')?.detail).toBe(join(state, 'agent.json'));
    expect(check('data')?.detail).toMatch(/2 subjects, 0 problem/);
    expect(checks.filter((c) => c.ok === false).map((c) => c.name)).toEqual(['enrollment', 'coordinator']);
  });
});

describe('the packed coordinator', () => {
  const coordinatorBin = join(coordinatorPrefix, 'bin', 'fedsynth-coordinator');

  it('prints its version and protocol version', async () => {
    const r = await run(coordinatorBin, ['--version'], { cwd: work, env: cleanEnv(home), timeoutMs: 60_000 });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`fedsynth-coordinator ${COORDINATOR_VERSION} (protocol ${PROTOCOL_VERSION})\n`);
    const dir = installedAt(coordinatorPrefix, 'fedsynth-coordinator');
    for (const p of await resolvedFrom(dir, ['@fedsynth/protocol', '@nestjs/core', '@electric-sql/pglite']))
      expect(p.startsWith(dir + sep), p).toBe(true);
  });

  it('serves on its embedded database: /health answers, an outdated agent hears how to upgrade, the packed agent finds its protocol, SIGTERM stops it', async () => {
    const proc = spawn(
      coordinatorBin,
      ['serve', '--port', '0', '--data-dir', join(work, 'coordinator-data')],
      {
        cwd: work,
        env: cleanEnv(home),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    coordinator = proc;
    let out = '';
    let err = '';
    proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address within 180 s:\n${out}\n${err}`)), 180_000);
      proc.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      void exited.then((code) => reject(new Error(`exited ${code} before listening:\n${out}\n${err}`)));
    });

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      version: COORDINATOR_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      database: 'embedded',
    });

    // An agent one protocol version behind logs in; the refusal reaches it and says what to do.
    const socket = io(`${url}/agents`, { transports: ['websocket'], reconnection: false });
    try {
      const refusal = await new Promise<{ code: string; message: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer to the login within 30 s')), 30_000);
        socket.on('auth.challenge', (c: { nonce: Uint8Array; protocolVersion: number }) => {
          expect(c.protocolVersion).toBe(PROTOCOL_VERSION);
          socket.emit('auth.response', {
            protocolVersion: PROTOCOL_VERSION - 1,
            publicKey: new Uint8Array(32).fill(9),
            nonce: new Uint8Array(c.nonce),
            signature: new Uint8Array(64),
            agentVersion: '0.0.1',
          });
        });
        socket.on('protocol.error', (e: { code: string; message: string }) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
      expect(refusal.code).toBe('WRONG_VERSION');
      expect(refusal.message).toContain(
        `this agent speaks protocol version ${PROTOCOL_VERSION - 1}; the coordinator speaks version ${PROTOCOL_VERSION}: upgrade the agent (npm install -g fedsynth-site-agent@latest`,
      );
    } finally {
      socket.disconnect();
    }

    // The packed agent's doctor reaches it and finds its own protocol version there.
    const doctor = await run(agentBin('fedsynth-agent'), ['doctor', '--json'], {
      cwd: work,
      env: agentEnv({ FEDSYNTH_AGENT_COORDINATOR_URL: url }),
      timeoutMs: 180_000,
    });
    const { checks } = JSON.parse(doctor.out) as {
      checks: { name: string; ok: boolean | 'warn'; detail: string }[];
    };
    expect(checks.find((c) => c.name === 'coordinator')).toMatchObject({ ok: true });
    expect(checks.find((c) => c.name === 'protocol')).toEqual({
      name: 'protocol',
      ok: true,
      detail: `version ${PROTOCOL_VERSION}, as the coordinator's`,
    });

    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 300_000);
});
