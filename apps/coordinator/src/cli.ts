import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import {
  asksForVersion,
  type FlagSpec,
  numFlag,
  parseFlags,
  runCli,
  UsageError,
  usage,
  versionLine,
} from '@fedsynth/cli-kit';
import { PROTOCOL_VERSION } from '@fedsynth/protocol';
import { type AdminBackend, auditTable, databaseBackend, restBackend, tokenTable } from './admin-commands';
import { MAX_AUDIT_PAGE } from './audit/audit-log';
import { loadOrCreateCoordinatorIdentity } from './auth/coordinator-identity';
import { MAX_TOKEN_HOURS } from './auth/token-admin';
import { type Database, DatabaseError, openDatabase } from './db/database';
import { AgentGateway, DEFAULT_LIMITS } from './gateway/agent-gateway';
import { createHttpApp } from './http/app';
import { DEFAULT_BODY_LIMITS } from './http/body-policy';
import { type BoundarySettings, DEFAULT_BOUNDARY } from './http/boundary-settings';
import { CoordinatorContext } from './http/context';
import { DEFAULT_FAILURE_LIMIT } from './http/failure-limiter';
import { LOG_LEVELS, logSettings } from './logging/log-settings';
import { createLogger, type Logger, useLogger } from './logging/logger';
import { FederationRunner } from './rounds/federation-runner';
import { RoundEngine } from './rounds/round-engine';
import { RoundLease } from './rounds/round-lease';

const VERSION = (
  JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }
).version;

const DB_FLAGS: Record<string, FlagSpec> = {
  'data-dir': {
    type: 'string',
    valueName: 'dir',
    description: 'data directory (embedded database, checkpoints; $FEDSYNTH_DATA_DIR)',
    default: '~/.fedsynth-coordinator',
  },
  'database-url': {
    type: 'string',
    valueName: 'url',
    description: 'PostgreSQL URL ($DATABASE_URL); the embedded database when absent',
  },
};
const SERVE_FLAGS: Record<string, FlagSpec> = {
  ...DB_FLAGS,
  port: { type: 'string', valueName: 'n', description: 'HTTP(S) port ($PORT)', default: '8080' },
  host: { type: 'string', valueName: 'addr', description: 'address to listen on', default: '127.0.0.1' },
  'tls-cert': {
    type: 'string',
    valueName: 'file',
    description: 'TLS certificate (PEM); serve HTTPS with --tls-key',
  },
  'tls-key': { type: 'string', valueName: 'file', description: 'TLS private key (PEM)' },
  'stage-seconds': {
    type: 'string',
    valueName: 's',
    description: 'deadline of each secure-aggregation stage',
    default: '120',
  },
  'train-seconds': {
    type: 'string',
    valueName: 's',
    description: 'deadline for local training and the masked upload',
    default: '1800',
  },
  'redis-url': {
    type: 'string',
    valueName: 'url',
    description:
      'Redis for running several replicas ($REDIS_URL): agents may connect to any; one drives the rounds (needs --database-url)',
  },
  'retry-seconds': {
    type: 'string',
    valueName: 's',
    description: 'wait after a failed round before the next',
    default: '30',
  },
  'max-concurrent-rounds': {
    type: 'string',
    valueName: 'n',
    description: 'rounds in progress at once over all federations (each federation runs one at a time)',
    default: '4',
  },
  'max-model-mb': {
    type: 'string',
    valueName: 'n',
    description: 'largest model upload accepted (PUT /api/federations/:id/checkpoint)',
    default: String(DEFAULT_BODY_LIMITS.model / 1024 ** 2),
  },
  'auth-failures': {
    type: 'string',
    valueName: 'n',
    description:
      'failed authentications (API tokens, enrollments, agent logins) an address may have per window before it gets 429',
    default: String(DEFAULT_FAILURE_LIMIT.limit),
  },
  'auth-window-seconds': {
    type: 'string',
    valueName: 's',
    description: 'the window of --auth-failures',
    default: String(DEFAULT_FAILURE_LIMIT.windowMs / 1000),
  },
  'login-seconds': {
    type: 'string',
    valueName: 's',
    description: 'time an agent connection has to log in before it is closed',
    default: String(DEFAULT_LIMITS.authTimeoutMs / 1000),
  },
  'max-unauthenticated': {
    type: 'string',
    valueName: 'n',
    description: 'agent connections that have not logged in yet, at once',
    default: String(DEFAULT_LIMITS.unauthenticatedTotal),
  },
  'max-unauthenticated-per-address': {
    type: 'string',
    valueName: 'n',
    description: 'agent connections that have not logged in yet, at once, from one address',
    default: String(DEFAULT_LIMITS.unauthenticatedPerAddress),
  },
  'trust-proxy': {
    type: 'string',
    valueName: 'spec',
    description:
      'believe X-Forwarded-For from these proxies for client addresses: a hop count, or addresses/subnets (e.g. loopback,10.0.0.0/8); none by default',
  },
  'cors-origin': {
    type: 'string',
    valueName: 'origins',
    description: 'browser origins allowed to call the API cross-site (comma-separated); none by default',
  },
  'log-level': {
    type: 'string',
    valueName: 'level',
    description: `least severe log records written: ${LOG_LEVELS.join('|')} ($FEDSYNTH_LOG_LEVEL)`,
    default: 'info',
  },
  'log-format': {
    type: 'string',
    valueName: 'json|pretty|auto',
    description:
      'log records on stderr: JSON lines, or human lines; auto: pretty on a terminal, JSON otherwise ($FEDSYNTH_LOG_FORMAT)',
    default: 'auto',
  },
};
/** --url and --token of the commands that act on the database unless they are given a coordinator. */
const VIA_API_FLAGS: Record<string, FlagSpec> = {
  url: {
    type: 'string',
    valueName: 'url',
    description:
      'act through the REST API of the coordinator at this address instead of on the database (needed while a coordinator on the embedded database runs: it holds the database locked)',
  },
  token: { type: 'string', valueName: 'token', description: 'admin API token for --url ($FEDSYNTH_TOKEN)' },
};
const TOKEN_FLAGS: Record<string, FlagSpec> = {
  ...DB_FLAGS,
  ...VIA_API_FLAGS,
  role: { type: 'string', valueName: 'admin|researcher', description: 'role of the new token (create)' },
  label: { type: 'string', valueName: 'text', description: 'a note to recognise the token by (create)' },
  'expires-hours': {
    type: 'string',
    valueName: 'n',
    description: `the token stops working after this many hours, at most ${MAX_TOKEN_HOURS} (create); never when absent`,
  },
  federation: {
    type: 'string',
    valueName: 'name|id',
    description:
      'limit the token to this federation (create); repeat the flag or separate by commas for several; every federation when absent',
  },
};
const AUDIT_FLAGS: Record<string, FlagSpec> = {
  ...DB_FLAGS,
  ...VIA_API_FLAGS,
  limit: {
    type: 'string',
    valueName: 'n',
    description: `events to show, newest first (at most ${MAX_AUDIT_PAGE})`,
    default: '50',
  },
  before: { type: 'string', valueName: 'id', description: 'only events older than this event id (paging)' },
};
const REMOTE_FLAGS: Record<string, FlagSpec> = {
  url: {
    type: 'string',
    valueName: 'url',
    description: 'coordinator address ($FEDSYNTH_URL)',
    default: 'http://127.0.0.1:8080',
  },
  token: { type: 'string', valueName: 'token', description: 'admin API token ($FEDSYNTH_TOKEN)' },
  plan: { type: 'string', valueName: 'json', description: 'the plan section as JSON (create, update)' },
  config: {
    type: 'string',
    valueName: 'json',
    description:
      'configuration sections as JSON, e.g. {"strategy":{"kind":"fedadam"},"secagg":{"graph":{"kind":"harary","neighbours":4}}} (create, update)',
  },
  model: {
    type: 'string',
    valueName: 'file',
    description: 'safetensors model to upload as the initial global model (upload-model)',
  },
};

const COMMANDS = {
  serve: [
    'serve [flags]',
    'Starts the coordinator: dashboard at /, REST API (OpenAPI at /api/docs), /health, /metrics.\nPrints a first admin API token when none exists ($FEDSYNTH_ADMIN_TOKEN installs a given one),\nthen its address, on stdout; logs go to stderr (one JSON record a line, or human lines: --log-format).',
    SERVE_FLAGS,
  ],
  migrate: ['migrate [flags]', 'Brings the database schema up to date and exits.', DB_FLAGS],
  token: [
    'token create --role admin|researcher [--label L] [--expires-hours N] [--federation NAME]... | token list | token revoke ID [flags]',
    'Manages API tokens: create (the token is printed once, on stdout), list (never the secrets), revoke.\nOn the database directly, or with --url through the REST API of a running coordinator (admin token for every federation).',
    TOKEN_FLAGS,
  ],
  audit: [
    'audit [--limit N] [--before ID] [flags]',
    'Prints the audit trail, newest first: who did what to what, from which address, and how it ended.\nFrom the database directly, or with --url through the REST API of a running coordinator (admin token).',
    AUDIT_FLAGS,
  ],
  federation: [
    'federation create NAME | update NAME | start NAME | pause NAME | resume NAME | stop NAME | status [NAME] | upload-model NAME --model FILE [flags]',
    'Manages federations through the REST API of a running coordinator.',
    REMOTE_FLAGS,
  ],
} as const;

const TOP = `${versionLine('fedsynth-coordinator', VERSION, PROTOCOL_VERSION)}

Usage: fedsynth-coordinator <command> [flags]

Commands:
${Object.entries(COMMANDS)
  .map(
    ([k, [syn, desc]]) =>
      `  ${k.padEnd(12)}${desc.split('\n')[0]}\n  ${' '.repeat(12)}fedsynth-coordinator ${syn}`,
  )
  .join('\n')}

Run 'fedsynth-coordinator <command> --help' for its flags; 'fedsynth-coordinator --version' for the
version and the agent protocol version it speaks.
`;

function dataDir(v: Record<string, unknown>): string {
  const raw = String(
    v['data-dir'] ?? process.env.FEDSYNTH_DATA_DIR ?? join(homedir(), '.fedsynth-coordinator'),
  );
  return resolve(raw.startsWith('~/') ? join(homedir(), raw.slice(2)) : raw);
}

async function open(v: Record<string, unknown>): Promise<Database> {
  const databaseUrl = (v['database-url'] as string | undefined) ?? process.env.DATABASE_URL;
  try {
    return await openDatabase({ databaseUrl, dataDir: dataDir(v) });
  } catch (err) {
    if (err instanceof DatabaseError && err.code === 'LOCKED') {
      throw new Error(
        `${err.message}\n(while the coordinator runs, use its REST API: add --url http://HOST:PORT --token ADMIN_TOKEN)`,
      );
    }
    throw err;
  }
}

/** --trust-proxy as Express takes it: a hop count, or a list of addresses and subnets. */
function trustProxy(raw: unknown): BoundarySettings['trustProxy'] {
  if (raw === undefined || raw === 'false' || raw === '') return false;
  if (/^\d+$/.test(String(raw))) return Number(raw);
  const parts = String(raw)
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of parts)
    if (!/^(loopback|linklocal|uniquelocal|[\d.]+(\/\d+)?|[\da-f:]+(\/\d+)?)$/i.test(p))
      throw new UsageError(
        `--trust-proxy: "${p}" is not an address, a subnet, loopback, linklocal or uniquelocal`,
      );
  return parts.join(',');
}

function boundarySettings(v: Record<string, string | boolean | undefined>): BoundarySettings {
  const origins = String(v['cors-origin'] ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of origins)
    if (!/^https?:\/\/[^/]+$/.test(o))
      throw new UsageError(`--cors-origin: "${o}" is not an origin such as https://dashboard.example.org`);
  return {
    ...DEFAULT_BOUNDARY,
    body: { ...DEFAULT_BODY_LIMITS, model: numFlag(v, 'max-model-mb', 1, 65_536, 1024) * 1024 ** 2 },
    failures: {
      limit: numFlag(v, 'auth-failures', 1, 1_000_000, DEFAULT_FAILURE_LIMIT.limit),
      windowMs: numFlag(v, 'auth-window-seconds', 1, 86_400, DEFAULT_FAILURE_LIMIT.windowMs / 1000) * 1000,
    },
    trustProxy: trustProxy(v['trust-proxy']),
    corsOrigins: origins,
  };
}

/** `serve`: logs with the settings of its flags from the start; a failure to start is logged too. */
async function serve(v: Record<string, string | boolean | undefined>): Promise<number> {
  const logger = createLogger(logSettings(v));
  useLogger(logger);
  try {
    return await startServing(v, logger);
  } catch (err) {
    if (!(err instanceof UsageError)) logger.fatal({ err }, 'the coordinator could not start');
    throw err;
  }
}

async function startServing(
  v: Record<string, string | boolean | undefined>,
  logger: Logger,
): Promise<number> {
  const port = numFlag(v, 'port', 0, 65535, Number(process.env.PORT ?? 8080));
  const host = String(v.host ?? '127.0.0.1');
  if (!!v['tls-cert'] !== !!v['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
  const https = v['tls-cert']
    ? { cert: readFileSync(String(v['tls-cert'])), key: readFileSync(String(v['tls-key'])) }
    : undefined;
  const boundary = boundarySettings(v);
  const db = await open(v);
  const ctx = new CoordinatorContext(
    db,
    VERSION,
    join(dataDir(v), 'checkpoints'),
    loadOrCreateCoordinatorIdentity(join(dataDir(v), 'coordinator-identity.json')),
    boundary,
  );
  if (!(await ctx.tokens.hasAdmin())) {
    // A deployment may provide the first admin token as a secret; otherwise one is made and shown
    // to the operator once, on stdout, as plain text: never as a log record, which pipelines ship.
    const given = process.env.FEDSYNTH_ADMIN_TOKEN;
    if (given) {
      const { id } = await ctx.tokens.create('admin', 'first admin ($FEDSYNTH_ADMIN_TOKEN)', { given });
      logger.info({ tokenId: id }, 'first admin API token installed from $FEDSYNTH_ADMIN_TOKEN');
    } else {
      const { id, token } = await ctx.tokens.create('admin', 'first admin (printed by serve)');
      process.stdout.write(`first admin API token (shown once, keep it safe):\n  ${token}\n`);
      logger.warn(
        { tokenId: id },
        'created a first admin API token and printed it once on stdout (it is not logged); set $FEDSYNTH_ADMIN_TOKEN to provide one instead',
      );
    }
  }
  const app = await createHttpApp(ctx, { https });
  const gateway = new AgentGateway(app.getHttpServer(), ctx, {
    authTimeoutMs: numFlag(v, 'login-seconds', 1, 600, DEFAULT_LIMITS.authTimeoutMs / 1000) * 1000,
    unauthenticatedTotal: numFlag(
      v,
      'max-unauthenticated',
      1,
      1_000_000,
      DEFAULT_LIMITS.unauthenticatedTotal,
    ),
    unauthenticatedPerAddress: numFlag(
      v,
      'max-unauthenticated-per-address',
      1,
      1_000_000,
      DEFAULT_LIMITS.unauthenticatedPerAddress,
    ),
  });
  ctx.connectedSites = () => gateway.sessions.size;
  // Among replicas, the agents connected to any of them.
  ctx.onlineSiteIds = async () => new Set((await gateway.allSessions()).map((s) => s.siteId));
  const engine = new RoundEngine(ctx, gateway, ctx.checkpoints, {
    stageTimeoutMs: numFlag(v, 'stage-seconds', 1, 86_400, 120) * 1000,
    trainTimeoutMs: numFlag(v, 'train-seconds', 1, 7 * 86_400, 1800) * 1000,
  });
  const runner = new FederationRunner(ctx, engine, {
    intervalMs: 1000,
    retrySeconds: numFlag(v, 'retry-seconds', 0, 86_400, 30),
    maxConcurrentRounds: numFlag(v, 'max-concurrent-rounds', 1, 1000, 4),
  });
  const drive = async () => {
    const aborted = await engine.recover();
    if (aborted)
      logger.warn(
        { rounds: aborted },
        `marked ${aborted} round(s) left unfinished by a restart as aborted; training continues from the last checkpoint`,
      );
    runner.start();
  };
  const redisUrl = (v['redis-url'] as string | undefined) ?? process.env.REDIS_URL;
  let lease: RoundLease | null = null;
  if (redisUrl) {
    const databaseUrl = (v['database-url'] as string | undefined) ?? process.env.DATABASE_URL;
    if (!databaseUrl)
      throw new UsageError(
        '--redis-url (replicas) needs a shared PostgreSQL: set --database-url or $DATABASE_URL',
      );
    await gateway.useRedis(redisUrl, process.env.FEDSYNTH_REDIS_KEY ?? 'fedsynth');
    lease = new RoundLease(databaseUrl);
  }
  // Idle keep-alive connections stay open longer than clients keep them (undici: 4 s, load
  // balancers: 60 s), so a client never reuses a connection the server has just closed; on a
  // busy machine Node's 5 s default lost that race and requests failed with ECONNRESET.
  const server = app.getHttpServer() as import('node:http').Server;
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await app.listen(port, host);
  if (lease) {
    logger.info('replica mode: waiting for the round lease (another replica may be driving)');
    lease
      .start(async () => {
        gateway.driving = true;
        logger.info('holding the round lease: this replica drives the rounds');
        await drive();
      })
      .catch((err) => {
        logger.fatal({ err }, 'round lease failed; exiting');
        process.exit(1);
      });
  } else {
    await drive();
  }
  const addr = app.getHttpServer().address() as { port: number };
  const url = `${https ? 'https' : 'http'}://${host}:${addr.port}`;
  logger.info(
    {
      version: VERSION,
      url,
      database: db.kind,
      databaseLocation: db.location,
      docs: `${url}/api/docs`,
      agents: `${url}/agents`,
    },
    `listening on ${url}`,
  );
  // For the operator and for scripts, whatever the log level: the address (e.g. of --port 0).
  process.stdout.write(
    `fedsynth coordinator ${VERSION} listening on ${url} (database: ${db.kind} ${db.location}); API docs at ${url}/api/docs; agents connect to ${url}/agents\n`,
  );
  const stop = async (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'stopping');
    await lease?.close();
    // A round in progress is recorded as aborted rather than waited for (a stage may wait minutes);
    // the next start resumes from the last stored checkpoint, exactly as after a crash.
    const idle = Promise.race([
      runner.stop().then(() => true),
      new Promise((r) => setTimeout(() => r(false), 1000)),
    ]);
    if (!(await idle)) await engine.abortActive('the coordinator was stopped during the round');
    await gateway.close();
    await app.close();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return new Promise<number>(() => undefined);
}

/** Calls the REST API at `url` with an API token; errors carry the API's code and message. */
function apiCaller(url: string, token: string) {
  return async (method: string, path: string, body?: unknown, file?: string): Promise<unknown> => {
    let res: Response;
    try {
      res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': file ? 'application/octet-stream' : 'application/json',
          ...(file ? { 'content-length': String(statSync(file).size) } : {}),
        },
        body: file
          ? (Readable.toWeb(createReadStream(file)) as ReadableStream)
          : body
            ? JSON.stringify(body)
            : undefined,
        ...(file ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new Error(
        `cannot reach the coordinator at ${url}: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    const json = (await res.json()) as { code?: string; message?: string };
    if (!res.ok) throw new Error(`${json.code ?? res.status}: ${json.message ?? res.statusText}`);
    return json;
  };
}

function apiToken(v: Record<string, string | boolean | undefined>): string {
  const token = (v.token as string | undefined) ?? process.env.FEDSYNTH_TOKEN;
  if (!token) throw new UsageError('--token (or $FEDSYNTH_TOKEN) is required');
  return token;
}

async function remote(v: Record<string, string | boolean | undefined>, args: string[]): Promise<number> {
  const [sub, name] = args;
  const url = String(v.url ?? process.env.FEDSYNTH_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const call = apiCaller(url, apiToken(v));
  let out: unknown;
  const json = (flag: 'plan' | 'config'): Record<string, unknown> | undefined => {
    if (v[flag] === undefined) return undefined;
    try {
      const parsed = JSON.parse(String(v[flag]));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed;
    } catch {
      // refused below
    }
    throw new UsageError(`--${flag} must be a JSON object`);
  };
  const sections = () => {
    const plan = json('plan');
    return { ...json('config'), ...(plan ? { plan } : {}) };
  };
  if (sub === 'create') {
    if (!name) throw new UsageError('federation create needs a NAME');
    out = await call('POST', '/api/federations', { name, ...sections() });
  } else if (sub === 'update') {
    if (!name) throw new UsageError('federation update needs a NAME');
    const patch = sections();
    if (Object.keys(patch).length === 0) throw new UsageError('federation update needs --config or --plan');
    out = await call('PATCH', `/api/federations/${encodeURIComponent(name)}`, patch);
  } else if (sub === 'start' || sub === 'pause' || sub === 'resume' || sub === 'stop') {
    if (!name) throw new UsageError(`federation ${sub} needs a NAME`);
    out = await call('POST', `/api/federations/${encodeURIComponent(name)}/${sub}`);
  } else if (sub === 'upload-model') {
    if (!name) throw new UsageError('federation upload-model needs a NAME');
    if (!v.model) throw new UsageError('federation upload-model needs --model FILE (safetensors)');
    const file = resolve(String(v.model));
    if (!existsSync(file)) throw new UsageError(`--model: ${file} does not exist`);
    out = await call('PUT', `/api/federations/${encodeURIComponent(name)}/checkpoint`, undefined, file);
  } else if (sub === 'status') {
    out = name
      ? await call('GET', `/api/federations/${encodeURIComponent(name)}`)
      : await call('GET', '/api/federations');
  } else {
    throw new UsageError(
      sub
        ? `unknown federation command "${sub}"`
        : 'federation needs a command: create, update, start, pause, resume, stop, status or upload-model',
    );
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}

/** Every value of a repeatable flag (`--f a --f b,c` gives a, b, c); parseFlags keeps only the last. */
function repeatedFlag(argv: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === `--${name}` && i + 1 < argv.length) values.push(argv[++i]);
    else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
  }
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/**
 * Runs `token` and `audit` on the database, or through the REST API when --url is given (a
 * coordinator on the embedded database holds it locked while it runs).
 */
async function withAdminBackend(
  v: Record<string, string | boolean | undefined>,
  body: (backend: AdminBackend) => Promise<void>,
): Promise<number> {
  if (v.url !== undefined) {
    await body(restBackend(apiCaller(String(v.url).replace(/\/$/, ''), apiToken(v))));
    return 0;
  }
  const db = await open(v);
  try {
    await body(databaseBackend(new CoordinatorContext(db, VERSION)));
  } finally {
    await db.close();
  }
  return 0;
}

async function tokenCommand(
  v: Record<string, string | boolean | undefined>,
  positionals: string[],
  argv: string[],
): Promise<number> {
  const [sub, id, ...extra] = positionals;
  if (extra.length || (sub !== 'revoke' && id !== undefined))
    throw new UsageError(`unexpected argument "${extra[0] ?? id}"`);
  if (sub === 'create') {
    const role = v.role;
    if (role !== 'admin' && role !== 'researcher') throw new UsageError('--role must be admin or researcher');
    let expiresInHours: number | undefined;
    if (v['expires-hours'] !== undefined) {
      expiresInHours = Number(v['expires-hours']);
      if (!(expiresInHours > 0 && expiresInHours <= MAX_TOKEN_HOURS))
        throw new UsageError(
          `--expires-hours: "${v['expires-hours']}" must be a number in (0, ${MAX_TOKEN_HOURS}]`,
        );
    }
    const federations = repeatedFlag(argv, 'federation');
    return withAdminBackend(v, async (b) => {
      const t = await b.createToken({
        role,
        label: String(v.label ?? ''),
        expiresInHours,
        federations: federations.length ? federations : undefined,
      });
      const expiry = t.expiresAt ? `expires ${new Date(t.expiresAt).toISOString()}` : 'does not expire';
      const scope = t.federations ? `federations ${t.federations.join(', ')}` : 'every federation';
      // The secret alone on stdout, for scripts; what it is on stderr.
      process.stderr.write(`${role} token ${t.id} for ${scope}; ${expiry}. Shown once:\n`);
      process.stdout.write(`${t.token}\n`);
    });
  }
  if (sub === 'list')
    return withAdminBackend(v, async (b) => {
      process.stdout.write(tokenTable(await b.listTokens(), new Date()));
    });
  if (sub === 'revoke') {
    if (!id) throw new UsageError('token revoke needs the ID of the token (see token list)');
    return withAdminBackend(v, async (b) => {
      const t = await b.revokeToken(id);
      process.stdout.write(`revoked ${t.role} token ${t.id}${t.label ? ` (${t.label})` : ''}\n`);
    });
  }
  throw new UsageError(
    sub ? `unknown token command "${sub}"` : 'token needs a command: create, list or revoke',
  );
}

async function auditCommand(
  v: Record<string, string | boolean | undefined>,
  positionals: string[],
): Promise<number> {
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const limit = numFlag(v, 'limit', 1, MAX_AUDIT_PAGE, 50);
  const before = v.before as string | undefined;
  if (before !== undefined && !/^[1-9]\d{0,17}$/.test(before))
    throw new UsageError(`--before: "${before}" is not an event id`);
  return withAdminBackend(v, async (b) => {
    process.stdout.write(auditTable(await b.audit(limit, before)));
  });
}

/** Entry point of `fedsynth-coordinator`. */
export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (asksForVersion(argv)) {
    process.stdout.write(`${versionLine('fedsynth-coordinator', VERSION, PROTOCOL_VERSION)}\n`);
    process.exitCode = 0;
    return;
  }
  const spec = COMMANDS[command as keyof typeof COMMANDS];
  if (!spec) {
    if (command && command !== '--help' && command !== '-h' && command !== 'help')
      process.stderr.write(`fedsynth-coordinator: unknown command "${command}"\n\n`);
    process.stdout.write(TOP);
    process.exitCode = command && !['--help', '-h', 'help'].includes(command) ? 2 : 0;
    return;
  }
  const [synopsis, description, flags] = spec;
  const help = usage(`fedsynth-coordinator`, synopsis, description, flags);
  await runCli(`fedsynth-coordinator ${command}`, help, async () => {
    const { values, positionals } = parseFlags(rest, flags, true);
    if (values.help) {
      process.stdout.write(help);
      return 0;
    }
    switch (command) {
      case 'serve':
        return serve(values);
      case 'migrate': {
        const db = await open(values);
        process.stdout.write(`schema up to date (${db.kind} ${db.location})\n`);
        await db.close();
        return 0;
      }
      case 'token':
        return tokenCommand(values, positionals, rest);
      case 'audit':
        return auditCommand(values, positionals);
      default:
        return remote(values, positionals);
    }
  });
}
