import { In, type Repository } from 'typeorm';
import { FederationEntity, type FederationStatus } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { isUuid } from '../http/ids';

/** What an admin may set when creating a federation; everything else has a default. */
export interface FederationInput {
  name: string;
  task?: { source: string; target: string };
  modelConfig?: Record<string, unknown>;
  plan?: Record<string, unknown>;
  serverOptimizer?: Record<string, unknown>;
  secagg?: Record<string, unknown>;
  dp?: Record<string, unknown>;
}

/** Defaults: MRI -> CT, the default U-Net at 64x64, FedAvg, active-adversary threshold, no DP noise. */
export const FEDERATION_DEFAULTS = {
  task: { source: 'mr', target: 'ct' },
  modelConfig: { size: 64, channels: [32, 64, 80], numResBlocks: 2 },
  plan: {
    localSteps: 50,
    batchSize: 8,
    lr: 2e-4,
    prediction: 'sample',
    schedule: 'cosine',
    fedProxMu: 0,
    minSites: 3,
    maxSites: 100,
    fraction: 1,
    waitSeconds: 300,
    /** Validation slices one site's evaluation report may weigh in the global figures. */
    maxEvalCount: 10_000,
  },
  serverOptimizer: { kind: 'fedavg', lr: 1 },
  secagg: { threatModel: 'active', graph: 'complete', clip: 0.05, levels: 65536, stageSeconds: 120 },
  dp: { clip: 10, noiseMultiplier: 0, delta: 1e-5 },
};

export type FederationAction = 'start' | 'pause' | 'resume' | 'stop';

/** Legal status transitions: which action leads from which status to which. */
export const TRANSITIONS: Record<FederationAction, { from: FederationStatus[]; to: FederationStatus }> = {
  start: { from: ['created'], to: 'running' },
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  stop: { from: ['created', 'running', 'paused'], to: 'stopped' },
};

/** Pure: the status an action leads to, or an ILLEGAL_TRANSITION naming both. */
export function nextStatus(current: FederationStatus, action: FederationAction): FederationStatus {
  const t = TRANSITIONS[action];
  if (!t)
    throw new CoordinatorError(
      ErrorCode.INVALID_INPUT,
      `unknown action "${action}"; use start, pause, resume or stop`,
    );
  if (!t.from.includes(current))
    throw new CoordinatorError(
      ErrorCode.ILLEGAL_TRANSITION,
      `cannot ${action} a federation that is ${current}`,
    );
  return t.to;
}

const NAME = /^[A-Za-z0-9][\w.-]{0,99}$/;

/** Federations: create with defaults, list, get, and start/pause/resume/stop. */
export class FederationService {
  constructor(private readonly repo: Repository<FederationEntity>) {}

  async create(input: FederationInput): Promise<FederationEntity> {
    if (!input || typeof input.name !== 'string' || !NAME.test(input.name)) {
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'name: 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit',
      );
    }
    if (await this.repo.existsBy({ name: input.name }))
      throw new CoordinatorError(ErrorCode.NAME_TAKEN, `a federation named "${input.name}" exists`);
    const merge = <T extends object>(d: T, v?: object) => ({ ...d, ...(v ?? {}) });
    return this.repo.save({
      name: input.name,
      task: merge(FEDERATION_DEFAULTS.task, input.task),
      modelConfig: merge(FEDERATION_DEFAULTS.modelConfig, input.modelConfig),
      plan: merge(FEDERATION_DEFAULTS.plan, input.plan),
      serverOptimizer: merge(FEDERATION_DEFAULTS.serverOptimizer, input.serverOptimizer),
      secagg: merge(FEDERATION_DEFAULTS.secagg, input.secagg),
      dp: merge(FEDERATION_DEFAULTS.dp, input.dp),
      status: 'created',
      currentCheckpoint: null,
    });
  }

  list(): Promise<FederationEntity[]> {
    return this.repo.find({ order: { createdAt: 'ASC' } });
  }

  /** The federations with these ids that exist, in creation order. */
  byIds(ids: readonly string[]): Promise<FederationEntity[]> {
    return ids.length
      ? this.repo.find({ where: { id: In([...ids]) }, order: { createdAt: 'ASC' } })
      : Promise.resolve([]);
  }

  /** A federation by id or by name; anything that is neither is refused before the database sees it. */
  async get(id: string): Promise<FederationEntity> {
    if (!isUuid(id) && !NAME.test(id))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'a federation is named by its id (a UUID) or its name',
      );
    const f = isUuid(id) ? await this.repo.findOneBy({ id }) : await this.repo.findOneBy({ name: id });
    if (!f) throw new CoordinatorError(ErrorCode.NOT_FOUND, `no federation "${id}"`);
    return f;
  }

  /** Sets the federation's current global model. */
  async setCheckpoint(id: string, sha256: string): Promise<void> {
    await this.repo.update({ id }, { currentCheckpoint: sha256 });
  }

  /** Whether any round of the federation has completed (its model then comes from the rounds). */
  async hasCompletedRounds(id: string): Promise<boolean> {
    const rows = await this.repo.query(
      `SELECT 1 FROM rounds WHERE federation_id = $1 AND stage = 'completed' LIMIT 1`,
      [id],
    );
    return rows.length > 0;
  }

  /**
   * Sets an uploaded initial model, in one statement that checks no round has completed meanwhile;
   * false when one has (the upload then changes nothing).
   */
  async setInitialCheckpoint(id: string, sha256: string): Promise<boolean> {
    const [, affected] = (await this.repo.query(
      `UPDATE federations SET current_checkpoint = $2, updated_at = now()
        WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM rounds WHERE federation_id = $1 AND stage = 'completed')`,
      [id, sha256],
    )) as [unknown, number];
    return affected > 0;
  }

  /** Applies an action atomically: the update only succeeds from the status it was checked in. */
  async transition(id: string, action: FederationAction): Promise<FederationEntity> {
    const f = await this.get(id);
    const to = nextStatus(f.status, action);
    const r = await this.repo.update({ id: f.id, status: f.status }, { status: to });
    if (!r.affected)
      throw new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `federation "${f.name}" changed status meanwhile; try again`,
      );
    return this.get(f.id);
  }
}
