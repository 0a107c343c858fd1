import {
  applyConfigPatch,
  DEFAULT_FEDERATION_CONFIG,
  type FederationConfig,
  FederationConfigError,
  parseFederationConfig,
} from '@fedsynth/protocol';
import { type DataSource, In, type Repository } from 'typeorm';
import { FederationConfigVersionEntity, FederationEntity, type FederationStatus } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { isUuid } from '../http/ids';

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

function invalidConfig(err: unknown): never {
  if (err instanceof FederationConfigError)
    throw new CoordinatorError(ErrorCode.INVALID_INPUT, err.problems.join('; '));
  throw err;
}

/**
 * Federations: created with a configuration checked against libs/protocol's FederationConfig
 * (defaults filled, unknown keys refused), changed between rounds as new versions, listed, and
 * moved through start/pause/resume/stop.
 */
export class FederationService {
  private readonly repo: Repository<FederationEntity>;

  constructor(private readonly ds: DataSource) {
    this.repo = ds.getRepository(FederationEntity);
  }

  /**
   * Creates a federation from its name and configuration sections (task, model, plan, strategy,
   * secagg, dp, privacy; each optional). The configuration is version 1.
   */
  async create(
    input: { name: string } & Record<string, unknown>,
    createdBy: string | null = null,
  ): Promise<FederationEntity> {
    const { name, ...sections } = input ?? ({} as { name: string });
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        'name: 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit',
      );
    }
    let config: FederationConfig;
    try {
      config = parseFederationConfig(sections);
    } catch (err) {
      invalidConfig(err);
    }
    if (await this.repo.existsBy({ name }))
      throw new CoordinatorError(ErrorCode.NAME_TAKEN, `a federation named "${name}" exists`);
    return this.ds.transaction(async (m) => {
      const fed = await m.getRepository(FederationEntity).save({
        name,
        config,
        configVersion: 1,
        status: 'created',
        statusReason: null,
        currentCheckpoint: null,
      });
      await m.getRepository(FederationConfigVersionEntity).insert({
        federationId: fed.id,
        version: 1,
        config,
        createdBy,
      });
      return fed;
    });
  }

  /** The federation's configuration, parsed (throws FederationConfigError when the stored one no longer parses). */
  configOf(fed: FederationEntity): FederationConfig {
    return parseFederationConfig(fed.config);
  }

  /**
   * Changes the configuration (a partial document: sections merge key by key) between rounds: the
   * result must parse, no round of the federation may be running, and the version goes up by one.
   * A federation paused because its stored configuration broke may be mended this way.
   */
  async updateConfig(id: string, patch: unknown, createdBy: string | null = null): Promise<FederationEntity> {
    const fed = await this.get(id);
    let current: FederationConfig;
    try {
      current = this.configOf(fed);
    } catch {
      current = DEFAULT_FEDERATION_CONFIG; // a broken stored config is replaced, section by section
    }
    let next: FederationConfig;
    try {
      next = applyConfigPatch(current, patch);
    } catch (err) {
      invalidConfig(err);
    }
    if (await this.hasOpenRound(fed.id))
      throw new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `federation "${fed.name}" has a round running; change its configuration between rounds`,
      );
    const version = fed.configVersion + 1;
    await this.ds.transaction(async (m) => {
      const r = await m
        .getRepository(FederationEntity)
        .update({ id: fed.id, configVersion: fed.configVersion }, { config: next, configVersion: version });
      if (!r.affected)
        throw new CoordinatorError(
          ErrorCode.ILLEGAL_TRANSITION,
          `federation "${fed.name}" was changed meanwhile; try again`,
        );
      await m
        .getRepository(FederationConfigVersionEntity)
        .insert({ federationId: fed.id, version, config: next, createdBy });
    });
    return this.get(fed.id);
  }

  /** Every version of a federation's configuration, oldest first. */
  versions(federationId: string): Promise<FederationConfigVersionEntity[]> {
    return this.ds
      .getRepository(FederationConfigVersionEntity)
      .find({ where: { federationId }, order: { version: 'ASC' } });
  }

  /** Whether a round of the federation is in progress (not completed, failed or aborted). */
  async hasOpenRound(id: string): Promise<boolean> {
    const rows = await this.repo.query(
      `SELECT 1 FROM rounds WHERE federation_id = $1 AND stage NOT IN ('completed', 'failed', 'aborted') LIMIT 1`,
      [id],
    );
    return rows.length > 0;
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

  /**
   * Applies an action atomically: the update only succeeds from the status it was checked in. A
   * federation whose configuration does not parse cannot start or resume; the coordinator's own
   * reason for a pause is cleared by a resume.
   */
  async transition(id: string, action: FederationAction): Promise<FederationEntity> {
    const f = await this.get(id);
    const to = nextStatus(f.status, action);
    if (to === 'running') {
      try {
        this.configOf(f);
      } catch (err) {
        if (err instanceof FederationConfigError)
          throw new CoordinatorError(
            ErrorCode.ILLEGAL_TRANSITION,
            `federation "${f.name}" cannot ${action}: its configuration is invalid (${err.problems.join('; ')}); change it with PATCH first`,
          );
        throw err;
      }
    }
    const r = await this.repo.update(
      { id: f.id, status: f.status },
      { status: to, statusReason: to === 'running' ? null : f.statusReason },
    );
    if (!r.affected)
      throw new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `federation "${f.name}" changed status meanwhile; try again`,
      );
    return this.get(f.id);
  }

  /**
   * The coordinator pauses (or stops) a running federation itself, saying why: its configuration no
   * longer parses, a budget is spent, its rounds are done. Only from running; false otherwise.
   */
  async haltWithReason(id: string, to: 'paused' | 'stopped', reason: string): Promise<boolean> {
    const r = await this.repo.update({ id, status: 'running' }, { status: to, statusReason: reason });
    return (r.affected ?? 0) > 0;
  }
}
