import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS } from '../agent/logger';
import { parseTrainingWindow } from '../controls/training-window';

/** Where the agent keeps its identity, state and audit log unless told otherwise. */
export function defaultStateDir(): string {
  return process.env.FEDSYNTH_AGENT_HOME ?? join(homedir(), '.fedsynth-agent');
}

const windowSpec = z.string().refine(
  (s) => {
    try {
      parseTrainingWindow(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must look like 20:00-06:00 (24-hour clock) or "always"' },
);

const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;

/** Every setting of the agent, with its default. */
export const agentConfigSchema = z
  .object({
    siteName: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\w.-]+$/, 'letters, digits, ".", "_" and "-" only'),
    coordinatorUrl: z.url({ protocol: /^(https?|wss?)$/ }).optional(),
    dataDir: z.string().min(1).optional(),
    stateDir: z.string().min(1),
    backend: z.enum(['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    trainingWindow: windowSpec.default('always'),
    paused: z.boolean().default(false),
    optOut: z.boolean().default(false),
    maxLocalSteps: z.number().int().positive().max(1_000_000).default(10_000),
    maxBatch: z.number().int().positive().max(1024).default(32),
    /** Data-parallel training and evaluation threads (default: every core on wasm, 1 on the native backends). */
    trainingThreads: z.number().int().positive().max(256).optional(),
    /** Tensor memory per training thread in MiB (default: planned from the backend and the machine). */
    memoryMb: z.number().int().min(16).max(16_777_216).optional(),
    modalities: z
      .object({
        source: z.string().min(1).default('mr'),
        target: z.string().min(1).default('ct'),
        mask: z.string().min(1).default('mask'),
      })
      .default({ source: 'mr', target: 'ct', mask: 'mask' }),
    /**
     * File names (without extension) per modality for tasks beyond MRI -> CT, e.g.
     * {"t1": ["T1w"], "flair": ["FLAIR_reg"]} (defaults: t1/t1w, t2/t2w, flair, pet, ct, mr).
     */
    modalityFiles: z
      .partialRecord(
        z.enum(['mr', 't1', 't2', 'flair', 'pet', 'ct']),
        z.array(z.string().min(1).max(200)).min(1),
      )
      .optional(),
    /** DICOM series per modality, by a case-insensitive pattern on SeriesDescription, e.g. {"t1": "mprage"}. */
    dicomSeries: z
      .partialRecord(
        z.enum(['mr', 't1', 't2', 'flair', 'pet', 'ct']),
        z
          .string()
          .min(1)
          .max(200)
          .refine((s) => {
            try {
              new RegExp(s, 'i');
              return true;
            } catch {
              return false;
            }
          }, 'not a valid regular expression'),
      )
      .optional(),
    caCert: z.string().min(1).optional(),
    logFormat: z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(', ')}` }).default('auto'),
    /** The least severe log records written. */
    logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  })
  .strict();

export type AgentConfig = z.infer<typeof agentConfigSchema>;

/** Raised when settings are invalid; `problems` lists every bad setting, one line each. */
export class AgentConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid agent configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'AgentConfigError';
  }
}

/** Environment variables that map onto settings (FEDSYNTH_AGENT_<NAME>). */
const ENV_KEYS: Record<string, keyof AgentConfig> = {
  FEDSYNTH_AGENT_SITE_NAME: 'siteName',
  FEDSYNTH_AGENT_COORDINATOR_URL: 'coordinatorUrl',
  FEDSYNTH_AGENT_DATA_DIR: 'dataDir',
  FEDSYNTH_AGENT_HOME: 'stateDir',
  FEDSYNTH_BACKEND: 'backend',
  FEDSYNTH_AGENT_TRAINING_WINDOW: 'trainingWindow',
  FEDSYNTH_AGENT_PAUSED: 'paused',
  FEDSYNTH_AGENT_OPT_OUT: 'optOut',
  FEDSYNTH_AGENT_MAX_LOCAL_STEPS: 'maxLocalSteps',
  FEDSYNTH_AGENT_MAX_BATCH: 'maxBatch',
  FEDSYNTH_AGENT_TRAINING_THREADS: 'trainingThreads',
  FEDSYNTH_AGENT_MEMORY_MB: 'memoryMb',
  FEDSYNTH_AGENT_CA_CERT: 'caCert',
  // The variables shared with the coordinator first: the agent's own win.
  FEDSYNTH_LOG_FORMAT: 'logFormat',
  FEDSYNTH_AGENT_LOG_FORMAT: 'logFormat',
  FEDSYNTH_LOG_LEVEL: 'logLevel',
  FEDSYNTH_AGENT_LOG_LEVEL: 'logLevel',
};

/** Settings with a fixed set of values, checked where they come from (a variable or a flag). */
const CHOICES: Partial<Record<keyof AgentConfig, readonly string[]>> = {
  logFormat: LOG_FORMATS,
  logLevel: LOG_LEVELS,
};

const NUMERIC = new Set<keyof AgentConfig>(['maxLocalSteps', 'maxBatch', 'trainingThreads', 'memoryMb']);
const BOOLEAN = new Set<keyof AgentConfig>(['paused', 'optOut']);

function coerce(key: keyof AgentConfig, raw: string, origin: string, problems: string[]): unknown {
  const choices = CHOICES[key];
  if (choices && !choices.includes(raw)) {
    problems.push(`${key} (from ${origin}): "${raw}" must be one of ${choices.join(', ')}`);
    return undefined;
  }
  if (NUMERIC.has(key)) {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n))
      problems.push(`${key} (from ${origin}): "${raw}" is not a number`);
    return n;
  }
  if (BOOLEAN.has(key)) {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${key} (from ${origin}): "${raw}" is not true/false`);
    return raw;
  }
  return raw;
}

/** Sets settings in agent.json, keeping the others (the file must exist; it stays mode 0600). */
export async function updateConfigFile(stateDir: string, patch: Partial<AgentConfig>): Promise<void> {
  const file = configPath(stateDir);
  const current = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  await writeFile(file, `${JSON.stringify({ ...current, ...patch }, null, 2)}\n`, { mode: 0o600 });
}

/** The config file path inside a state directory. */
export function configPath(stateDir: string): string {
  return join(stateDir, 'agent.json');
}

/**
 * Where settings come from: `<stateDir>/agent.json`, then an environment, then flags (later wins).
 * The daemon keeps the sources it started with and re-reads them at each round start, so a control
 * given by environment or flag holds as long as the daemon runs, and edits to the file take effect.
 */
export interface AgentConfigSources {
  stateDir?: string;
  /** FEDSYNTH_AGENT_* variables (default: process.env). */
  env?: NodeJS.ProcessEnv;
  flags?: Partial<Record<keyof AgentConfig, unknown>>;
  /** A missing agent.json is an error (commands after `init`). */
  requireFile?: boolean;
}

/**
 * Loads settings from the config file, then the environment, then flags (later wins), and
 * validates them once; every bad setting is reported together.
 */
export function loadAgentConfig(opts: AgentConfigSources): AgentConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const stateDir = resolve(opts.stateDir ?? env.FEDSYNTH_AGENT_HOME ?? defaultStateDir());
  const file = configPath(stateDir);
  let fromFile: Record<string, unknown> = {};
  try {
    fromFile = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
      problems.push(`${file}: must hold a JSON object`);
      fromFile = {};
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if (opts.requireFile) problems.push(`${file} not found; run 'fedsynth-agent init' first`);
    } else {
      problems.push(`${file}: ${code ? `cannot be read (${code})` : 'is not valid JSON'}`);
    }
  }
  const merged: Record<string, unknown> = { ...fromFile, stateDir };
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw !== undefined && key !== 'stateDir') merged[key] = coerce(key, raw, `$${name}`, problems);
  }
  for (const [key, value] of Object.entries(opts.flags ?? {})) {
    if (value === undefined) continue;
    const k = key as keyof AgentConfig;
    merged[k] = typeof value === 'string' ? coerce(k, value, `--${kebab(k)}`, problems) : value;
  }
  const parsed = agentConfigSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.join('.') || '(config)';
      problems.push(`${path}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new AgentConfigError(problems);
  return parsed.data;
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** How the site's files are recognized for tasks beyond MRI -> CT (agent.json's modalityFiles, dicomSeries). */
export function modalityMatchOf(config: Pick<AgentConfig, 'modalityFiles' | 'dicomSeries'>): {
  names?: Partial<Record<string, string[]>>;
  series?: Partial<Record<string, string>>;
} {
  return {
    ...(config.modalityFiles ? { names: config.modalityFiles } : {}),
    ...(config.dicomSeries ? { series: config.dicomSeries } : {}),
  };
}
