import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Modality } from '@fedsynth/imaging';

// From apps/demo/src (tests) or apps/demo/dist (built) alike, the apps folder is two levels up.
const APPS = join(__dirname, '..', '..');
export const COORDINATOR_BIN = join(APPS, 'coordinator', 'bin', 'fedsynth-coordinator.js');
export const AGENT_BIN = join(APPS, 'site-agent', 'bin', 'fedsynth-agent.js');

/** A coordinator process that is listening: its URL and everything it has printed so far. */
export interface SpawnedCoordinator {
  proc: ChildProcess;
  url: string;
  port: number;
  /** stdout and stderr together, as they arrived. */
  output(): string;
  /** The plain lines for people and scripts: the first admin token, the address. */
  stdout(): string;
  /** The log: one JSON record a line (or human lines with --log-format pretty). */
  stderr(): string;
}

/** The address in the coordinator's "listening" log record, or its plain line on stdout. */
function listeningUrl(line: string): string | undefined {
  if (line.startsWith('{')) {
    try {
      const r = JSON.parse(line) as { msg?: unknown; url?: unknown };
      if (typeof r.url === 'string' && String(r.msg).startsWith('listening on')) return r.url;
    } catch {
      // not a record
    }
    return undefined;
  }
  return /listening on (https?:\/\/[\d.]+:\d+)/.exec(line)?.[1];
}

/** Whether `serve <args>` writes no info records (its "listening" record among them). */
function quietLog(args: string[]): boolean {
  const i = args.findIndex((a) => a === '--log-level' || a.startsWith('--log-level='));
  const level = i < 0 ? 'info' : args[i].includes('=') ? args[i].split('=')[1] : args[i + 1];
  return ['warn', 'error', 'fatal', 'silent'].includes(level);
}

/** The environment of a coordinator whose output is read: no log settings from this one. */
function withoutLogSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.FEDSYNTH_LOG_LEVEL;
  delete out.FEDSYNTH_LOG_FORMAT;
  return out;
}

/**
 * Starts `fedsynth-coordinator <args>` (e.g. serve --data-dir ... --port 0) in its own process and
 * resolves once it tells its address: its "listening" log record, so that every record written
 * before is in `output()` (or the plain line on stdout when its --log-level hides info records);
 * rejects with its output if it exits or is silent for `timeoutMs`. Output keeps being collected
 * (and copied to `logFile`) afterwards. $FEDSYNTH_LOG_LEVEL and $FEDSYNTH_LOG_FORMAT are not passed
 * on: log settings come from `args`.
 */
export function spawnCoordinator(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; timeoutMs?: number } = {},
): Promise<SpawnedCoordinator> {
  const proc = spawn(process.execPath, [COORDINATOR_BIN, ...args], {
    env: withoutLogSettings(opts.env ?? process.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : null;
  let out = '';
  const streams = { stdout: '', stderr: '' };
  const announcedOn = quietLog(args) ? 'stdout' : 'stderr';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`the coordinator did not start in ${(opts.timeoutMs ?? 120_000) / 1000} s:\n${out}`),
        ),
      opts.timeoutMs ?? 120_000,
    );
    let started = false;
    const collect = (name: 'stdout' | 'stderr') => (d: Buffer) => {
      log?.write(d);
      out += d.toString();
      const before = streams[name];
      streams[name] += d.toString();
      if (started || name !== announcedOn) return;
      // Complete lines only, from the start of the first line this chunk completes.
      const lines = streams[name]
        .slice(before.lastIndexOf('\n') + 1)
        .split('\n')
        .slice(0, -1);
      const url = lines.map(listeningUrl).find((u) => u !== undefined);
      if (url) {
        started = true;
        clearTimeout(timer);
        resolve({
          proc,
          url,
          port: Number(new URL(url).port),
          output: () => out,
          stdout: () => streams.stdout,
          stderr: () => streams.stderr,
        });
      }
    };
    proc.stdout!.on('data', collect('stdout'));
    proc.stderr!.on('data', collect('stderr'));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`the coordinator exited with ${code}:\n${out}`));
    });
  });
}

/** How each site's phantom data is made. */
export interface PhantomSiteOptions {
  /** Site k uses seed + k. */
  seed: number;
  subjects?: number;
  /** In-plane size of the phantom volumes. */
  size?: number;
  /** Modalities to image each subject with (default MRI and CT). */
  modalities?: Modality[];
}

/**
 * Phantom MRI/CT data for sites, one folder per name under `root`, with the scanner profiles
 * site-a, site-b and site-c in turn so that sites differ as hospitals do; returns the folders.
 */
export async function writeSitePhantoms(
  root: string,
  names: string[],
  opts: PhantomSiteOptions,
): Promise<string[]> {
  const { writePhantomDataset } = await import('@fedsynth/imaging');
  const dirs: string[] = [];
  for (const [k, name] of names.entries()) {
    const out = join(root, name);
    await writePhantomDataset({
      out,
      subjects: opts.subjects ?? 3,
      seed: opts.seed + k,
      profile: SITE_PHANTOM_PROFILES[k % SITE_PHANTOM_PROFILES.length],
      size: opts.size ?? 32,
      ...(opts.modalities ? { modalities: opts.modalities } : {}),
    });
    dirs.push(out);
  }
  return dirs;
}

/** The scanner profiles sites take in turn. */
export const SITE_PHANTOM_PROFILES = ['site-a', 'site-b', 'site-c'];

/** A round as the REST API lists it. */
export interface RoundRecord {
  id: string;
  number: number;
  stage: string;
  participants: { index: number; siteId: string }[] | null;
  /** The round's secure-aggregation graph, neighbours per site and threshold. */
  secagg: { graph: 'complete' | 'harary'; neighbours: number; threshold: number } | null;
  configVersion: number | null;
  dropouts: { siteId: string; stage: string }[] | null;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  checkpointOut: string | null;
  /** The model the round published when it is not checkpointOut (the server's moving average). */
  modelOut: string | null;
  bytesIn: string;
  bytesOut: string;
}

/** One metric row as the REST API lists it. */
export interface MetricRecord {
  round: number;
  site: string | null;
  name: string;
  value: number;
  count: number;
}

export interface LocalFederationOptions {
  /** Working folder: coordinator data, site state, logs. */
  dir: string;
  /** PostgreSQL URL; the embedded database in the coordinator's data folder when absent. */
  databaseUrl?: string;
  stageSeconds?: number;
  trainSeconds?: number;
  retrySeconds?: number;
  /** Extra environment for the agents (e.g. FEDSYNTH_BACKEND). */
  agentEnv?: NodeJS.ProcessEnv;
  /** Extra flags for `fedsynth-coordinator serve` (limits, proxies). */
  coordinatorArgs?: string[];
}

/** Runs a CLI to its end; rejects with its output when it fails. */
function runToEnd(args: string[], env: NodeJS.ProcessEnv, log: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => {
      out += d;
    });
    p.stderr!.on('data', (d) => {
      out += d;
    });
    p.on('exit', (code) => {
      createWriteStream(log, { flags: 'a' }).end(`$ ${args.slice(1).join(' ')}\n${out}\n`);
      if (code === 0) resolve(out);
      else reject(new Error(`${args.slice(1, 3).join(' ')} exited with ${code}:\n${out}`));
    });
  });
}

/**
 * A federation on one machine, every part a separate process: the coordinator (its CLI, on the
 * embedded database unless a URL is given) and one site agent per site (its CLI: init, enroll, run).
 * Used by the demo, the end-to-end tests and the federated-versus-central benchmark.
 */
export class LocalFederation {
  coordinator: ChildProcess | null = null;
  url = '';
  adminToken = '';
  readonly agents = new Map<
    string,
    { proc: ChildProcess; stateDir: string; siteId: string; exited: Promise<number | null> }
  >();

  constructor(readonly opts: LocalFederationOptions) {
    mkdirSync(opts.dir, { recursive: true });
  }

  private coordinatorEnv(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.DATABASE_URL;
    delete env.FEDSYNTH_ADMIN_TOKEN; // the admin token is read from the first start's stdout
    if (this.opts.databaseUrl) env.DATABASE_URL = this.opts.databaseUrl;
    return env;
  }

  /** Starts (or restarts) the coordinator; resolves once it listens. */
  async startCoordinator(): Promise<void> {
    const dataDir = join(this.opts.dir, 'coordinator');
    const args = [
      'serve',
      '--data-dir',
      dataDir,
      '--port',
      this.url ? new URL(this.url).port : '0',
      '--stage-seconds',
      String(this.opts.stageSeconds ?? 60),
      '--train-seconds',
      String(this.opts.trainSeconds ?? 900),
      '--retry-seconds',
      String(this.opts.retrySeconds ?? 2),
      ...(this.opts.coordinatorArgs ?? []),
    ];
    const c = await spawnCoordinator(args, {
      env: this.coordinatorEnv(),
      logFile: join(this.opts.dir, 'coordinator.log'),
    });
    this.coordinator = c.proc;
    this.url = c.url;
    const token = /first admin API token[^\n]*\n\s*(fsk_\S+)/.exec(c.stdout());
    if (token) this.adminToken = token[1];
    if (!this.adminToken) throw new Error('the coordinator printed no admin token (data folder reused?)');
  }

  /** Stops the coordinator: SIGTERM for a clean stop, SIGKILL for a crash. */
  async stopCoordinator(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.coordinator;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
    this.coordinator = null;
  }

  /** Calls the REST API with the admin token; errors carry the API's code and message. */
  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = res.headers.get('content-type') ?? '';
    const payload = type.includes('json') ? await res.json() : new Uint8Array(await res.arrayBuffer());
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(payload)}`);
    return payload as T;
  }

  /** Uploads a federation's initial model (safetensors) as the streamed binary body the API takes. */
  async uploadModel(federationId: string, model: Uint8Array): Promise<{ sha256: string; size: number }> {
    const res = await fetch(`${this.url}/api/federations/${federationId}/checkpoint`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/octet-stream' },
      body: model,
    });
    const payload = await res.json();
    if (!res.ok) throw new Error(`uploading the model: ${res.status} ${JSON.stringify(payload)}`);
    return payload as { sha256: string; size: number };
  }

  async createFederation(
    name: string,
    settings: Record<string, unknown>,
  ): Promise<{ id: string; name: string }> {
    return this.api('POST', '/api/federations', { name, ...settings });
  }

  /**
   * Adds a site as its own agent process: `init`, a one-time token from the admin API, `enroll`,
   * approval by the admin, then `run` (logs in the site's folder).
   */
  async addSite(
    federationId: string,
    name: string,
    dataDir: string,
    opts: { coordinatorUrl?: string } = {},
  ): Promise<void> {
    const stateDir = join(this.opts.dir, 'sites', name);
    mkdirSync(stateDir, { recursive: true });
    const env = { ...process.env, ...this.opts.agentEnv };
    const log = join(stateDir, 'agent.log');
    await runToEnd(
      [
        AGENT_BIN,
        'init',
        '--state-dir',
        stateDir,
        '--site-name',
        name,
        '--data-dir',
        dataDir,
        '--coordinator-url',
        opts.coordinatorUrl ?? this.url,
        '--force',
      ],
      env,
      log,
    );
    const { token } = await this.api<{ token: string }>(
      'POST',
      `/api/federations/${federationId}/enrollment-tokens`,
      {
        siteName: name,
      },
    );
    await runToEnd([AGENT_BIN, 'enroll', '--state-dir', stateDir, '--token', token], env, log);
    const enrollment = JSON.parse(readFileSync(join(stateDir, 'enrollment.json'), 'utf8')) as {
      siteId: string;
    };
    await this.api('POST', `/api/sites/${enrollment.siteId}/approve`);
    this.startAgent(name, stateDir, enrollment.siteId);
  }

  /**
   * Phantom data for each named site (see writeSitePhantoms) and its agent, as addSite does;
   * returns the data folders. `coordinatorUrl(k)` lets a site connect through another address (a
   * proxy, a load balancer).
   */
  async addPhantomSites(
    federationId: string,
    names: string[],
    opts: PhantomSiteOptions & { dataRoot: string; coordinatorUrl?: (k: number) => string | undefined },
  ): Promise<string[]> {
    const dirs = await writeSitePhantoms(opts.dataRoot, names, opts);
    for (const [k, name] of names.entries())
      await this.addSite(federationId, name, dirs[k], { coordinatorUrl: opts.coordinatorUrl?.(k) });
    return dirs;
  }

  /** Starts (or restarts) a site's daemon. */
  startAgent(
    name: string,
    stateDir = join(this.opts.dir, 'sites', name),
    siteId = this.agents.get(name)!.siteId,
  ): void {
    const out = createWriteStream(join(stateDir, 'agent.log'), { flags: 'a' });
    const proc = spawn(
      process.execPath,
      [AGENT_BIN, 'run', '--state-dir', stateDir, '--log-format', 'json'],
      {
        // The sites share this machine: one training thread each unless told otherwise.
        env: { FEDSYNTH_AGENT_TRAINING_THREADS: '1', ...process.env, ...this.opts.agentEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    proc.stdout!.pipe(out);
    proc.stderr!.pipe(out);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    this.agents.set(name, { proc, stateDir, siteId, exited });
  }

  /** Kills a site's daemon (SIGKILL: as if the machine lost power). */
  async killAgent(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const a = this.agents.get(name);
    if (!a || a.proc.exitCode !== null) return;
    a.proc.kill(signal);
    await a.exited;
  }

  rounds(federationId: string): Promise<RoundRecord[]> {
    return this.api('GET', `/api/federations/${federationId}/rounds`);
  }

  metrics(federationId: string, perSite = false): Promise<MetricRecord[]> {
    return this.api('GET', `/api/federations/${federationId}/metrics${perSite ? '?perSite=1' : ''}`);
  }

  /**
   * Waits until `count` rounds have completed, calling `onRound` for each round that ends
   * (completed, failed or aborted). Rejects after `timeoutMs`, or when an agent process dies
   * unexpectedly and too few remain.
   */
  async waitForRounds(
    federationId: string,
    count: number,
    opts: { timeoutMs: number; onRound?: (r: RoundRecord) => void | Promise<void>; maxFailures?: number },
  ): Promise<RoundRecord[]> {
    const seen = new Set<string>();
    const end = Date.now() + opts.timeoutMs;
    for (;;) {
      const rounds = await this.rounds(federationId);
      for (const r of rounds.sort((a, b) => a.number - b.number)) {
        if (['completed', 'failed', 'aborted'].includes(r.stage) && !seen.has(r.id)) {
          seen.add(r.id);
          await opts.onRound?.(r);
        }
      }
      const done = rounds.filter((r) => r.stage === 'completed');
      if (done.length >= count) return rounds;
      const failed = rounds.filter((r) => r.stage === 'failed').length;
      if (failed > (opts.maxFailures ?? 3))
        throw new Error(
          `${failed} rounds failed: ${rounds
            .filter((r) => r.stage === 'failed')
            .map((r) => `round ${r.number}: ${r.error}`)
            .join('; ')}`,
        );
      if (Date.now() > end)
        throw new Error(
          `timed out with ${done.length} of ${count} rounds completed (stages: ${rounds.map((r) => r.stage).join(', ')})`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Stops every process this federation started. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((n) => this.killAgent(n, 'SIGTERM')));
    await this.stopCoordinator('SIGTERM');
  }

  /** Kills every process at once (for exit handlers). */
  killAll(): void {
    for (const a of this.agents.values()) if (a.proc.exitCode === null) a.proc.kill('SIGKILL');
    if (this.coordinator?.exitCode === null) this.coordinator.kill('SIGKILL');
  }
}
