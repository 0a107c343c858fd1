import { type DataSource, In, IsNull, Not } from 'typeorm';
import { FederationEntity, MetricEntity, RoundEntity } from '../db/entities';
import { type RoundStage, RoundState } from './round-state';

/** What a completed round leaves behind, written in one transaction. */
export interface RoundOutcome {
  checkpointOut: string;
  /** The model the round publishes when it is not checkpointOut (the server's moving average). */
  modelOut?: string | null;
  dropouts: { siteId: string; stage: string; reason?: string }[];
  bytesIn: number;
  bytesOut: number;
  metrics: Omit<MetricEntity, 'id'>[];
}

/**
 * The persisted record of one round: every stage change is written as it happens; a shutdown may
 * mark it aborted, after which nothing overwrites that; completion writes the metrics, the round
 * and the federation's new model together, only if the federation's model is still the round's
 * input, so an aborted or failed round's output never becomes anybody's input.
 */
export class RoundRecord {
  private ended = false;

  constructor(
    private readonly ds: DataSource,
    readonly row: RoundEntity,
    readonly state: RoundState,
  ) {}

  private async persist(extra: Partial<RoundEntity> = {}): Promise<void> {
    if (this.ended) return;
    await this.ds
      .getRepository(RoundEntity)
      .update(
        { id: this.row.id },
        { stage: this.state.stage, stageTimes: this.state.stageTimes(), ...extra },
      );
  }

  async advance(stage: RoundStage, extra: Partial<RoundEntity> = {}): Promise<void> {
    this.state.advance(stage);
    await this.persist(extra);
  }

  /** Records the participants and the secure-aggregation graph once they are chosen. */
  participants(list: { index: number; siteId: string }[], secagg: RoundEntity['secagg']): Promise<void> {
    return this.persist({ participants: list, secagg });
  }

  async fail(reason: string, bytes: { bytesIn: number; bytesOut: number }): Promise<void> {
    if (this.ended) return;
    this.state.end('failed', reason);
    await this.persist({
      error: reason,
      finishedAt: new Date(),
      bytesIn: String(bytes.bytesIn),
      bytesOut: String(bytes.bytesOut),
    });
    this.ended = true;
  }

  /** A shutdown ends the round: recorded as aborted, never overwritten afterwards. */
  async abort(reason: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.ds
      .getRepository(RoundEntity)
      .update({ id: this.row.id }, { stage: 'aborted', error: reason, finishedAt: new Date() });
  }

  /** Completes the round, with everything it leaves, in one transaction (see the class comment). */
  async complete(o: RoundOutcome): Promise<void> {
    const finishedAt = new Date();
    const { row } = this;
    await this.ds.transaction(async (m) => {
      if (o.metrics.length) await m.getRepository(MetricEntity).insert(o.metrics);
      const done = await m.getRepository(RoundEntity).update(
        { id: row.id, stage: this.state.stage },
        {
          stage: 'completed',
          stageTimes: { ...this.state.stageTimes(), completed: finishedAt.toISOString() },
          checkpointOut: o.checkpointOut,
          modelOut: o.modelOut ?? null,
          dropouts: o.dropouts,
          bytesIn: String(o.bytesIn),
          bytesOut: String(o.bytesOut),
          finishedAt,
        },
      );
      if (!done.affected) throw new Error('the round was ended meanwhile (the coordinator is stopping)');
      const moved = await m
        .getRepository(FederationEntity)
        .update(
          { id: row.federationId, currentCheckpoint: row.checkpointIn },
          { currentCheckpoint: o.checkpointOut, currentModel: o.modelOut ?? null },
        );
      if (!moved.affected)
        throw new Error(
          "the federation's model was replaced during the round; this round's output is discarded",
        );
    });
    this.state.advance('completed', finishedAt);
    this.ended = true;
  }
}

/** Opening and recovering round records. */
export class RoundRecords {
  constructor(private readonly ds: DataSource) {}

  /** A new round of a federation (numbered after its last one), starting from `checkpointIn`. */
  async open(federationId: string, checkpointIn: string, configVersion: number): Promise<RoundRecord> {
    const rounds = this.ds.getRepository(RoundEntity);
    const last = await rounds.findOne({ where: { federationId }, order: { number: 'DESC' } });
    const state = new RoundState('selecting');
    const row = await rounds.save({
      federationId,
      number: last ? last.number + 1 : 0,
      stage: state.stage,
      stageTimes: state.stageTimes(),
      checkpointIn,
      configVersion,
      startedAt: new Date(),
    });
    return new RoundRecord(this.ds, row, state);
  }

  /** Marks rounds that a restart left unfinished as aborted; training resumes from the last checkpoint. */
  async recover(): Promise<number> {
    const repo = this.ds.getRepository(RoundEntity);
    const open = await repo.findBy({ stage: Not(In(['completed', 'failed', 'aborted'])) });
    for (const r of open) {
      await repo.update(
        { id: r.id },
        {
          stage: 'aborted',
          error: `the coordinator restarted while the round was in ${r.stage}`,
          finishedAt: new Date(),
        },
      );
    }
    return open.length;
  }

  /** The completed round of a federation that produced model `sha256`, or null (e.g. its initial model). */
  async producerOf(federationId: string, sha256: string): Promise<number | null> {
    const r = await this.ds.getRepository(RoundEntity).findOne({
      where: { federationId, checkpointOut: sha256, stage: 'completed' },
      order: { number: 'DESC' },
    });
    return r?.number ?? null;
  }

  /** Whether round `roundNumber` of a federation has global evaluation figures already. */
  async hasEvaluation(federationId: string, roundNumber: number): Promise<boolean> {
    const n = await this.ds
      .getRepository(MetricEntity)
      .countBy({ federationId, roundNumber, siteId: IsNull(), name: 'mae' });
    return n > 0;
  }

  /** Completed rounds of a federation so far (for its round budget). */
  completedCount(federationId: string): Promise<number> {
    return this.ds.getRepository(RoundEntity).countBy({ federationId, stage: 'completed' });
  }
}
