import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createProgress } from '@fedsynth/cli-kit';
import { PROTOCOL_VERSION, RdpAccountant } from '@fedsynth/protocol';
import { enroll, keyFingerprint, readEnrollment } from '../agent/enrollment';
import { loadDiffusion } from '../agent/local-training';
import { createLogger, LOG_LEVELS } from '../agent/logger';
import { SiteAgent } from '../agent/site-agent';
import { isAlive, readStatus } from '../agent/status';
import { versionAdvice } from '../agent/upgrade-advice';
import { AuditLog } from '../audit/audit-log';
import {
  type AgentConfig,
  type AgentConfigSources,
  configPath,
  defaultStateDir,
  loadAgentConfig,
  modalityMatchOf,
  updateConfigFile,
} from '../config/agent-config';
import { fingerprint, readIdentityKey } from '../identity/identity-key';
import { AGENT_ROOT, AGENT_VERSION_LINE } from '../version';
import { type Command, identityPath, STATE_DIR_FLAG } from './shared';
import { checkSiteData, firstLines, requireTrainableData } from './site-data';

function stateDirOf(v: Record<string, unknown>): string {
  return resolve(String(v['state-dir'] ?? defaultStateDir()));
}

/** Where a command's settings come from: agent.json, the process environment and the given flags. */
function sourcesOf(
  v: Record<string, unknown>,
  flags: Partial<Record<keyof AgentConfig, unknown>> = {},
): AgentConfigSources {
  return { stateDir: stateDirOf(v), env: { ...process.env }, flags, requireFile: true };
}

/** Settings from agent.json, the environment and the given flags, validated together. */
function settings(v: Record<string, unknown>, flags: Partial<Record<keyof AgentConfig, unknown>> = {}) {
  return loadAgentConfig(sourcesOf(v, flags));
}

function needEnrollment(stateDir: string) {
  const e = readEnrollment(stateDir);
  if (!e)
    throw new Error(
      `this site is not enrolled (no ${join(stateDir, 'enrollment.json')}); run 'fedsynth-agent enroll --coordinator URL --token T'`,
    );
  return e;
}

const enrollCmd: Command = {
  name: 'enroll',
  summary: 'register this site with a coordinator using a one-time token',
  description:
    'Registers the identity key with the coordinator using the one-time token an admin issued for\n' +
    "this site, and pins the coordinator's signing key. An admin then approves the site.",
  flags: {
    'state-dir': STATE_DIR_FLAG,
    coordinator: {
      type: 'string',
      valueName: 'url',
      description: 'coordinator address (default: from agent.json)',
    },
    token: { type: 'string', valueName: 'token', description: 'one-time enrollment token (fse_...)' },
  },
  async run(v) {
    const stateDir = stateDirOf(v);
    const config = settings(v, { coordinatorUrl: v.coordinator });
    if (!v.token) throw new Error('--token is required (an admin creates one per site)');
    if (!config.coordinatorUrl)
      throw new Error('--coordinator is required (or set coordinatorUrl in agent.json)');
    const identity = await readIdentityKey(identityPath(stateDir));
    const e = await enroll({
      coordinatorUrl: config.coordinatorUrl,
      token: String(v.token),
      identity,
      stateDir,
      audit: new AuditLog(join(stateDir, 'audit.jsonl')),
    });
    await updateConfigFile(stateDir, { coordinatorUrl: config.coordinatorUrl });
    process.stdout.write(
      `enrolled site "${e.siteName}" (id ${e.siteId}) in federation ${e.federationId}: status ${e.status}\n` +
        `  site key fingerprint         ${fingerprint(identity.publicKey)}\n` +
        `  pinned coordinator key       ${keyFingerprint(e.coordinatorKey)}\n` +
        (e.status === 'approved' ? '' : 'an admin must approve the site before it takes part in rounds\n') +
        `next: fedsynth-agent run\n`,
    );
    return 0;
  },
};

const runCmd: Command = {
  name: 'run',
  summary: 'the daemon: connect, take part in rounds, reconnect',
  description:
    'Connects to the coordinator, logs in with the identity key and takes part in training rounds\n' +
    'while the site controls allow (training window, paused, opt-out). Reconnects with backoff and\n' +
    'survives coordinator restarts. Stops on SIGINT/SIGTERM. Every outbound message is written to\n' +
    '<state dir>/audit.jsonl before it is sent. First it runs the data check (as fedsynth-data check)\n' +
    'on the data directory and refuses to start, listing each problem, when it finds any or no subjects.',
  flags: {
    'state-dir': STATE_DIR_FLAG,
    'data-dir': {
      type: 'string',
      valueName: 'dir',
      description: 'local subjects (default: from agent.json)',
    },
    backend: {
      type: 'string',
      valueName: 'name',
      description: 'auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu (default: from agent.json)',
    },
    'log-format': {
      type: 'string',
      valueName: 'auto|pretty|json',
      description:
        'log lines on stderr: JSON, or human lines; auto: pretty on a terminal (default: $FEDSYNTH_AGENT_LOG_FORMAT, else $FEDSYNTH_LOG_FORMAT, else logFormat in agent.json, else auto)',
    },
    'log-level': {
      type: 'string',
      valueName: 'level',
      description: `least severe log lines written: ${LOG_LEVELS.join('|')} (default: $FEDSYNTH_AGENT_LOG_LEVEL, else $FEDSYNTH_LOG_LEVEL, else logLevel in agent.json, else info)`,
    },
    'training-window': {
      type: 'string',
      valueName: 'HH:MM-HH:MM',
      description: 'accept rounds only in this daily window (default: from agent.json)',
    },
  },
  async run(v) {
    const stateDir = stateDirOf(v);
    // Kept for the daemon's life: the controls are re-read from the same sources at each round.
    const configSources = sourcesOf(v, {
      dataDir: v['data-dir'] ? resolve(String(v['data-dir'])) : undefined,
      backend: v.backend,
      logFormat: v['log-format'],
      logLevel: v['log-level'],
      trainingWindow: v['training-window'],
    });
    const config = loadAgentConfig(configSources);
    const log = createLogger(config.logFormat, process.stderr, 'agent', config.logLevel);
    log.debug('settings', {
      stateDir,
      dataDir: config.dataDir ?? null,
      backend: config.backend,
      trainingWindow: config.trainingWindow,
      paused: config.paused,
      optOut: config.optOut,
      logFormat: config.logFormat,
      logLevel: config.logLevel,
    });
    // Before anything else (and before any connection): NaN or infinite voxels, broken headers or
    // mismatched MR/CT would otherwise surface only as a diverging loss rounds later.
    if (config.dataDir) {
      log.info('checking data', { dataDir: config.dataDir });
      const subjects = await requireTrainableData(config.dataDir, config.modalities, modalityMatchOf(config));
      log.info('data checked', { subjects });
    }
    const identity = await readIdentityKey(identityPath(stateDir));
    const enrollment = needEnrollment(stateDir);
    const d = loadDiffusion();
    const info = await d.selectBackend(config.backend);
    log.info('training backend', { backend: info.backend, device: info.device });
    if (!info.backend.startsWith('tensorflow')) log.info(d.GPU_HINT);
    if (!config.dataDir) log.warn('no data directory configured: this site will decline rounds');
    const agent = new SiteAgent({
      config,
      configSources,
      identity,
      enrollment,
      log,
      backend: info,
      progress: !log.json && !!process.stderr.isTTY,
    });
    const stop = () => void agent.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    log.info('agent starting', {
      site: enrollment.siteName,
      coordinator: enrollment.coordinatorUrl,
      stateDir,
    });
    await agent.run();
    return 0;
  },
};

const statusCmd: Command = {
  name: 'status',
  summary: 'enrollment, connection, current round and last results',
  description: 'Shows what the running (or last) daemon reported, the enrollment and the audit log totals.',
  flags: { 'state-dir': STATE_DIR_FLAG, json: { type: 'boolean', description: 'print one JSON object' } },
  async run(v) {
    const stateDir = stateDirOf(v);
    const config = settings(v);
    const e = readEnrollment(stateDir);
    const st = readStatus(stateDir);
    const audit = AuditLog.read(join(stateDir, 'audit.jsonl'));
    const privacyFile = join(stateDir, 'privacy.json');
    const epsilon = existsSync(privacyFile)
      ? new RdpAccountant(JSON.parse(readFileSync(privacyFile, 'utf8'))).epsilon(1e-5)
      : 0;
    const running = st ? isAlive(st.pid) && st.connection !== 'stopped' : false;
    const out = {
      site: config.siteName,
      enrolled: e ? { siteId: e.siteId, federationId: e.federationId, coordinator: e.coordinatorUrl } : null,
      daemon: running ? 'running' : 'not running',
      connection: running ? st!.connection : 'none',
      lastError: st?.lastError ?? null,
      backend: st?.backend ?? null,
      currentRound: running ? st!.currentRound : null,
      lastRound: st?.lastRound ?? null,
      lastEval: st?.lastEval ?? null,
      latestModel: st?.latestModel ?? null,
      roundsTaken: st?.roundsTaken ?? 0,
      controls: { trainingWindow: config.trainingWindow, paused: config.paused, optOut: config.optOut },
      audit: { messages: audit.length, bytesOut: audit.reduce((n, a) => n + a.bytes, 0) },
      epsilonAtDelta1e5: epsilon,
    };
    if (v.json) {
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return 0;
    }
    const line = (k: string, val: unknown) => `  ${k.padEnd(16)}${val}\n`;
    process.stdout.write(
      `site ${out.site}\n` +
        line('enrolled', e ? `yes (${e.siteId} at ${e.coordinatorUrl})` : "no: run 'fedsynth-agent enroll'") +
        line('daemon', `${out.daemon}${running ? `, ${out.connection}` : ''}`) +
        (out.lastError ? line('last error', out.lastError) : '') +
        line('backend', out.backend ?? '-') +
        line(
          'current round',
          out.currentRound ? `${out.currentRound.roundId} (${out.currentRound.stage})` : '-',
        ) +
        line(
          'last round',
          out.lastRound
            ? `${out.lastRound.roundId}: ${out.lastRound.outcome}${out.lastRound.reason ? ` (${out.lastRound.reason})` : ''}${out.lastRound.loss !== undefined ? `, loss ${out.lastRound.loss.toFixed(4)}` : ''}`
            : '-',
        ) +
        line(
          'last evaluation',
          out.lastEval
            ? `MAE ${out.lastEval.mae.toFixed(1)} HU, PSNR ${out.lastEval.psnr.toFixed(2)} dB, SSIM ${out.lastEval.ssim.toFixed(3)} on ${out.lastEval.count} slices`
            : '-',
        ) +
        line('rounds taken', out.roundsTaken) +
        line(
          'controls',
          `window ${config.trainingWindow}${config.paused ? ', paused' : ''}${config.optOut ? ', opted out' : ''}`,
        ) +
        line('audit log', `${out.audit.messages} messages, ${out.audit.bytesOut} bytes sent`) +
        line(
          'privacy',
          epsilon > 0 ? `epsilon ${epsilon.toFixed(2)} at delta 1e-5` : 'no DP noise added so far',
        ),
    );
    return 0;
  },
};

function setControl(name: 'pause' | 'resume', paused: boolean): Command {
  return {
    name,
    summary: paused ? 'decline rounds until resumed' : 'take part in rounds again',
    description: `Sets "paused": ${paused} in agent.json; a running daemon applies it from the next round.`,
    flags: { 'state-dir': STATE_DIR_FLAG },
    async run(v) {
      const stateDir = stateDirOf(v);
      settings(v);
      await updateConfigFile(stateDir, { paused });
      process.stdout.write(
        paused ? 'paused: rounds will be declined\n' : 'resumed: rounds will be accepted\n',
      );
      return 0;
    },
  };
}

const synthesizeCmd: Command = {
  name: 'synthesize',
  summary: "the model's target (e.g. a synthetic CT from an MRI) with the latest global model",
  description:
    'Runs the latest global model this site received (or --model) on local images and writes the\n' +
    "target of the model's task with the input's geometry: a synthetic CT (HU) from an MRI, or e.g. a\n" +
    'CT from T1 and T2 (--input t1=t1.nii.gz,t2=t2.nii.gz), a FLAIR from a T1 (normalized 0..1), an\n' +
    'MR from a PET (its dose for SUV from --pet-dose, pet.json beside it or the DICOM header).\n' +
    'Nothing is sent anywhere.',
  flags: {
    'state-dir': STATE_DIR_FLAG,
    input: {
      type: 'string',
      valueName: '[modality=]file',
      multiple: true,
      description:
        "the model's source images, each as modality=file, repeated or comma separated (--input t1=t1.nii.gz --input t2=t2.nii.gz), or a plain file for a one-source task such as MRI -> CT (NIfTI; for other tasks also PNG or a DICOM series' folder)",
    },
    out: {
      type: 'string',
      valueName: 'file',
      description: 'the target to write (.nii.gz): CT in HU, PET in SUV, MR normalized to 0..1',
    },
    model: {
      type: 'string',
      valueName: 'file',
      description: 'model to use instead of the latest global model',
    },
    mask: {
      type: 'string',
      valueName: 'file',
      description: 'body mask of the input (NIfTI; computed from the input when absent)',
    },
    'pet-dose': {
      type: 'string',
      valueName: 'file',
      description: "a PET source's dose sidecar (JSON: weight and injected dose), for SUV",
    },
    steps: { type: 'string', valueName: 'n', description: 'DDIM steps', default: '25' },
    backend: {
      type: 'string',
      valueName: 'name',
      description: 'auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu',
    },
  },
  async run(v) {
    const stateDir = stateDirOf(v);
    if (!v.input || !v.out) throw new Error('--input and --out are required');
    let model = v.model ? resolve(String(v.model)) : null;
    if (!model) {
      const latest = join(stateDir, 'models', 'latest');
      if (!existsSync(latest))
        throw new Error(
          `no global model yet in ${join(stateDir, 'models')}: the agent stores one after its first evaluated round (or pass --model)`,
        );
      model = join(stateDir, 'models', `${readFileSync(latest, 'utf8').trim()}.safetensors`);
    }
    const steps = Number(v.steps ?? 25);
    if (!Number.isInteger(steps) || steps < 1 || steps > 1000)
      throw new Error('--steps must be an integer in [1, 1000]');
    const d = loadDiffusion();
    const imaging = await import('@fedsynth/imaging');
    const info = await d.selectBackend(
      (v.backend as never) ?? (process.env.FEDSYNTH_BACKEND as never) ?? 'auto',
    );
    const { model: unet, metadata } = await d.loadModel(model);
    try {
      // The model's own task (MRI -> CT for models made before tasks were recorded).
      const task = metadata.task ? imaging.parseTask(metadata.task) : imaging.DEFAULT_TASK;
      const inputs = d.taskInputsOf([String(v.input)], task);
      const mriToCt = d.isMriToCt(task);
      if (mriToCt && v['pet-dose'] !== undefined)
        throw new Error("--pet-dose: the model's task mr-to-ct has no PET source");
      const bar = { p: null as ReturnType<typeof createProgress> | null };
      const size = Number(metadata.size ?? 64);
      // As many slices per model call as this backend's memory holds (up to 32).
      const batch = d.planSynthesis(unet.config, size, 32, d.memoryBudget(info.backend));
      const common = {
        size,
        prediction: (metadata.prediction as 'sample') ?? 'sample',
        schedule: (metadata.schedule as 'cosine') ?? 'cosine',
        steps,
        batch,
        seed: 0,
        threads: d.defaultThreads(),
      };
      const progress = (slices: number) => (done: number, total: number) => {
        bar.p ??= createProgress(`synthesizing ${slices} slices (${info.backend})`, total);
        bar.p.tick(done);
      };
      let slices: number;
      let t0: number;
      if (mriToCt) {
        const mr = await imaging.readNifti(resolve(String(inputs.mr)));
        const mask = v.mask
          ? Uint8Array.from((await imaging.readNifti(resolve(String(v.mask)))).data, (x) => (x > 0 ? 1 : 0))
          : undefined;
        if (mask && mask.length !== mr.data.length)
          throw new Error(`--mask has ${mask.length} voxels; --input has ${mr.data.length}`);
        slices = mr.dims[2];
        t0 = Date.now();
        const { ct } = await d.synthesizeVolume(unet, mr, {
          ...common,
          samples: 1,
          ...(mask ? { mask } : {}),
          onStep: progress(slices),
        });
        bar.p?.done();
        await imaging.writeNifti(resolve(String(v.out)), { ...mr, data: ct }, { datatype: 'int16' });
      } else {
        const { normalized, reference } = await d.readTaskInputs(task, inputs, {
          ...(v.mask ? { mask: String(v.mask) } : {}),
          ...(v['pet-dose'] !== undefined ? { petDose: String(v['pet-dose']) } : {}),
        });
        slices = reference.dims[2];
        t0 = Date.now();
        const unit = await d.synthesizeTask(unet, normalized, task, { ...common, onStep: progress(slices) });
        bar.p?.done();
        await d.writeTaskOutput(resolve(String(v.out)), task, unit, reference);
      }
      process.stdout.write(
        `${JSON.stringify({
          out: resolve(String(v.out)),
          model,
          ...(mriToCt ? {} : { task: imaging.formatTask(task) }),
          slices,
          steps,
          batch,
          seconds: Number(((Date.now() - t0) / 1000).toFixed(1)),
        })}\n`,
      );
      return 0;
    } finally {
      unet.dispose();
    }
  },
};

interface Check {
  name: string;
  ok: boolean | 'warn';
  detail: string;
}

/**
 * What this machine can train with the default U-Net, by the memory planner: slices per pass at
 * common sizes (larger batches are accumulated over passes) and the largest size at all.
 */
function trainingCapacityLine(
  d: ReturnType<typeof loadDiffusion>,
  backend: Parameters<typeof d.memoryBudget>[0],
  config: AgentConfig | null,
): string {
  const threads =
    config?.trainingThreads ?? d.defaultThreads(backend === 'tensorflow-gpu' ? 'tensorflow' : backend);
  const budget = config?.memoryMb ? config.memoryMb * 2 ** 20 : d.memoryBudget(backend, { threads });
  const sizes = d
    .trainingCapacity(d.DEFAULT_UNET_CONFIG, budget)
    .map(
      (c) =>
        `${c.size} px: ${c.maxBatch ? `${c.maxBatch} slice${c.maxBatch > 1 ? 's' : ''} per pass${c.checkpointing ? ' (checkpointed)' : ''}` : 'does not fit'}`,
    );
  const largest = d.largestSize(d.DEFAULT_UNET_CONFIG, 1, budget, 'checkpointed');
  return (
    `${Math.round(budget / 2 ** 20)} MiB per training thread x ${threads} thread${threads > 1 ? 's' : ''}; default U-Net: ` +
    `${sizes.join(', ')}; largest size ${largest ?? 'none'} px (batches beyond a pass are accumulated)`
  );
}

const doctorCmd: Command = {
  name: 'doctor',
  summary: 'check backend, device, data, coordinator, protocol, clock and disk',
  description:
    'Checks what the agent needs and says how to fix what is missing: the identity key and config,\n' +
    'the training backend and device (and how to enable tfjs-node-gpu on a CUDA host), the data\n' +
    'folder (the same checks as fedsynth-data check), the coordinator over HTTP(S) and its protocol\n' +
    'version, clock skew against the coordinator, and free disk. Exits 1 when a check fails.',
  flags: {
    'state-dir': STATE_DIR_FLAG,
    json: { type: 'boolean', description: 'print one JSON object' },
  },
  async run(v) {
    const stateDir = stateDirOf(v);
    const checks: Check[] = [];
    const add = (name: string, ok: Check['ok'], detail: string) => checks.push({ name, ok, detail });
    const [major, minor] = process.versions.node.split('.').map(Number);
    add(
      'node',
      major > 20 || (major === 20 && minor >= 19),
      `Node ${process.versions.node} (needs 20.19 or newer)`,
    );
    add('agent', true, `${AGENT_VERSION_LINE}, running from ${AGENT_ROOT}`);
    let config: AgentConfig | null = null;
    try {
      config = settings(v);
      add('config', true, configPath(stateDir));
    } catch (err) {
      add('config', false, (err as Error).message);
    }
    try {
      const key = await readIdentityKey(identityPath(stateDir));
      add('identity key', true, `${identityPath(stateDir)} (fingerprint ${fingerprint(key.publicKey)})`);
    } catch (err) {
      add('identity key', false, (err as Error).message);
    }
    const d = loadDiffusion();
    const cudaInfo = d.cudaInfo();
    const cuda = cudaInfo.gpus.length > 0;
    add(
      'cuda',
      cuda ? true : 'warn',
      cuda ? `GPU: ${d.describeCuda(cudaInfo)}` : `${d.describeCuda(cudaInfo)}: training runs on the CPU`,
    );
    try {
      const info = await d.selectBackend(config?.backend ?? 'auto');
      const gpu = info.backend === 'tensorflow-gpu' || info.backend === 'webgpu';
      add(
        'backend',
        gpu || !cuda ? true : 'warn',
        `${info.backend}: ${info.device}${gpu ? '' : `\n      ${d.GPU_HINT}`}`,
      );
      add('memory', true, trainingCapacityLine(d, info.backend, config));
    } catch (err) {
      add('backend', false, (err as Error).message);
    }
    if (config?.dataDir) {
      try {
        const r = await checkSiteData(config.dataDir, config.modalities, modalityMatchOf(config));
        const lines = firstLines(r.problems, 10);
        add(
          'data',
          r.ok,
          `${r.summary}${lines.map((l) => `\n      ${l}`).join('')}${r.ok ? '' : `\n      full report: ${r.hint}`}`,
        );
      } catch (err) {
        add('data', false, `${config.dataDir}: ${(err as Error).message}`);
      }
    } else {
      add('data', false, "no data directory: set dataDir in agent.json or pass --data-dir to 'run'");
    }
    const enrollment = readEnrollment(stateDir);
    const url = enrollment?.coordinatorUrl ?? config?.coordinatorUrl;
    add(
      'enrollment',
      !!enrollment,
      enrollment ? `site ${enrollment.siteId}` : "not enrolled: run 'fedsynth-agent enroll'",
    );
    if (url) {
      const t0 = Date.now();
      try {
        const res = await fetch(`${url.replace(/\/$/, '')}/health`, { signal: AbortSignal.timeout(10_000) });
        const ms = Date.now() - t0;
        const body = (await res.json()) as { status?: string; version?: string; protocolVersion?: unknown };
        const tls = url.startsWith('https');
        add(
          'coordinator',
          res.ok ? (tls || /\/\/(127\.|localhost)/.test(url) ? true : 'warn') : false,
          `${url}: ${res.status} ${body.status ?? ''} (version ${body.version ?? '?'}, ${ms} ms)${tls ? ', TLS' : ', not TLS: use https outside a test setup'}`,
        );
        // Coordinators before the protocol version was on /health say nothing: the login checks it.
        if (typeof body.protocolVersion === 'number')
          add(
            'protocol',
            body.protocolVersion === PROTOCOL_VERSION,
            body.protocolVersion === PROTOCOL_VERSION
              ? `version ${PROTOCOL_VERSION}, as the coordinator's`
              : versionAdvice(url, body.protocolVersion),
          );
        const date = res.headers.get('date');
        if (date) {
          const skew = (Date.now() - ms / 2 - Date.parse(date)) / 1000;
          add(
            'clock',
            Math.abs(skew) < 30 ? true : Math.abs(skew) < 300 ? 'warn' : false,
            `differs from the coordinator by ${skew.toFixed(1)} s`,
          );
        }
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        add(
          'coordinator',
          false,
          `${url}: unreachable (${cause?.code ?? cause?.message ?? (err as Error).message})`,
        );
      }
    } else {
      add('coordinator', false, 'no coordinator address: set coordinatorUrl or enroll');
    }
    try {
      const fs = statfsSync(existsSync(stateDir) ? stateDir : '.');
      const free = fs.bavail * fs.bsize;
      const gb = free / 1024 ** 3;
      add('disk', gb >= 1 ? true : gb >= 0.2 ? 'warn' : false, `${gb.toFixed(1)} GB free for ${stateDir}`);
    } catch (err) {
      add('disk', false, (err as Error).message);
    }
    const failed = checks.filter((c) => c.ok === false).length;
    if (v.json) process.stdout.write(`${JSON.stringify({ ok: failed === 0, checks }, null, 2)}\n`);
    else {
      for (const c of checks)
        process.stdout.write(
          `${c.ok === true ? 'ok  ' : c.ok === 'warn' ? 'warn' : 'FAIL'}  ${c.name.padEnd(13)} ${c.detail}\n`,
        );
      process.stdout.write(failed ? `${failed} check(s) failed\n` : 'all checks passed\n');
    }
    return failed ? 1 : 0;
  },
};

export const RUN_COMMANDS: Command[] = [
  enrollCmd,
  doctorCmd,
  runCmd,
  statusCmd,
  synthesizeCmd,
  setControl('pause', true),
  setControl('resume', false),
];
