import { chunkToUint32, type Message, maskedTransferId } from '@fedsynth/protocol';
import {
  type AggregateResult,
  type RoundConfig,
  SecAggError,
  SecAggErrorCode,
  SecAggServer,
} from '@fedsynth/secure-agg';
import type { RoundTransport } from './round-transport';
import { StageCollector } from './stage-collector';
import { UploadSlots } from './upload-slots';

/** The stages a secure round goes through, as the coordinator records them. */
export type SecureStage = 'advertise-keys' | 'share-keys' | 'masked-input' | 'consistency-check' | 'unmask';

export interface SecureRoundOptions {
  config: RoundConfig;
  transport: RoundTransport;
  stageTimeoutMs: number;
  trainTimeoutMs: number;
  maxConcurrentUploads: number;
  /** Called as each stage begins (the coordinator persists it). */
  onStage: (stage: SecureStage) => Promise<void>;
  /**
   * Participants revoked meanwhile (a revocation made through any replica), asked before the
   * masked inputs are closed and before the sum is unmasked.
   */
  revokedNow: () => Promise<number[]>;
  /** A participant's name in messages (its site's name). */
  nameOf: (index: number) => string;
}

/** The stage messages sites send, with the server step each one feeds. */
type StageEvent = 'secagg.advertise' | 'secagg.shares' | 'secagg.consistency' | 'secagg.unmask';

/**
 * One securely aggregated round between the coordinator and its participants, independent of how
 * messages travel: drives libs/secure-agg's server through every stage with a deadline each
 * (whoever has not answered by then is a dropout at that stage), adds masked chunks into the running
 * sum as they arrive (at most maxConcurrentUploads uploads at once), and takes the sites' training
 * and evaluation reports. A site whose training failed, or that was revoked, is not waited for; a
 * revoked site whose masked update is already in the sum fails the round, since it cannot be taken
 * out once the survivors have agreed on the list.
 */
export class SecureRound {
  readonly server: SecAggServer;
  readonly collector = new StageCollector();
  private readonly uploads: UploadSlots;
  readonly trainReports = new Map<number, Message<'round.train-report'>>();
  readonly evalReports = new Map<number, Message<'round.eval-report'>>();
  /** Participants whose local training failed, with their reason. */
  readonly gaveUp = new Map<number, string>();
  readonly revoked = new Set<number>();
  /** Participants whose whole masked vector is in the sum. */
  readonly completedInputs = new Set<number>();
  /** The model being evaluated, once there is one. */
  evaluating: string | null = null;
  bytesIn = 0;
  bytesOut = 0;
  private closed = false;

  constructor(private readonly opts: SecureRoundOptions) {
    this.server = new SecAggServer(opts.config);
    this.uploads = new UploadSlots(opts.maxConcurrentUploads);
  }

  get config(): RoundConfig {
    return this.opts.config;
  }

  get peakUploads(): number {
    return this.uploads.peak;
  }

  private active(index: number): boolean {
    return !this.closed && !this.gaveUp.has(index) && !this.revoked.has(index);
  }

  private refuse(index: number, err: unknown): void {
    this.opts.transport.send(index, 'protocol.error', {
      code: err instanceof SecAggError ? err.code : 'INVALID_MESSAGE',
      message: (err as Error).message,
    });
    this.collector.answered(index);
  }

  /** A stage message of participant `index` (schemas and libs/secure-agg's types are one). */
  receiveStage<E extends StageEvent>(index: number, event: E, msg: Message<E>): void {
    if (!this.active(index)) return;
    try {
      if (msg.sender !== index)
        throw new SecAggError(
          SecAggErrorCode.UNKNOWN_PARTICIPANT,
          `this connection is participant ${index}, not ${msg.sender}`,
        );
      const m = msg as Message<StageEvent>;
      if (event === 'secagg.advertise') this.server.receiveAdvertise(m as Message<'secagg.advertise'>);
      else if (event === 'secagg.shares') this.server.receiveShares(m as Message<'secagg.shares'>);
      else if (event === 'secagg.consistency')
        this.server.receiveConsistency(m as Message<'secagg.consistency'>);
      else this.server.receiveUnmask(m as Message<'secagg.unmask'>);
      this.collector.answered(index);
    } catch (err) {
      this.refuse(index, err);
    }
  }

  /**
   * A chunk of participant `index`'s masked vector: waits for an upload slot, checks the transfer and
   * adds the chunk into the running sum; the promise settles when the sender may get its ack.
   */
  async receiveChunk(index: number, m: Message<'secagg.masked-chunk'>): Promise<void> {
    if (!this.active(index)) return;
    await this.uploads.acquire(index);
    if (!this.active(index) || !this.opts.transport.connected(index)) return this.uploads.release(index);
    try {
      const expectedId = maskedTransferId(this.config.roundId, index);
      if (m.transferId !== expectedId)
        throw new Error(`masked chunk of transfer ${m.transferId}; expected ${expectedId}`);
      const expected = (this.config.vectorLength + 1) * 4;
      if (m.total !== expected)
        throw new Error(`masked vector of ${m.total} bytes; the round expects ${expected}`);
      if (m.offset % 4 !== 0) throw new Error(`masked chunk offset ${m.offset} is not a multiple of 4`);
      this.server.receiveMaskedChunk(index, m.offset / 4, chunkToUint32(m.data));
      this.bytesIn += m.data.length;
      if (m.offset + m.data.length === m.total) {
        this.server.completeMaskedInput(index);
        this.completedInputs.add(index);
        this.uploads.release(index);
        this.collector.answered(index);
      }
    } catch (err) {
      this.uploads.release(index);
      this.refuse(index, err);
    }
  }

  trainReport(index: number, m: Message<'round.train-report'>): void {
    if (this.active(index)) this.trainReports.set(index, m);
  }

  evalReport(index: number, m: Message<'round.eval-report'>): void {
    if (this.closed || m.modelHash !== this.evaluating) return;
    this.evalReports.set(index, m);
    this.collector.answered(index);
  }

  /** The site's training failed: a dropout now, not at the stage deadline. */
  trainFailed(index: number, reason: string): void {
    if (!this.active(index)) return;
    this.gaveUp.set(index, reason || 'local training failed');
    this.uploads.release(index);
    this.collector.exclude(index);
  }

  /** The site declined the round: it will not advertise keys. */
  declined(index: number): void {
    this.collector.answered(index);
  }

  revoke(index: number): void {
    this.revoked.add(index);
    this.uploads.release(index);
    this.collector.exclude(index);
  }

  disconnected(index: number): void {
    this.uploads.release(index);
    this.collector.answered(index);
  }

  /** A message of participant `index` was refused by the gateway (malformed, out of range). */
  refused(index: number, event: string): void {
    this.collector.refused(index, event);
  }

  /** A revoked site whose update is in the sum fails the round; one that is not is just a dropout. */
  private async refuseRevokedInputs(): Promise<void> {
    for (const i of await this.opts.revokedNow()) this.revoke(i);
    const bad = [...this.revoked].filter((i) => this.completedInputs.has(i));
    if (bad.length) {
      const names = bad.map((i) => `"${this.opts.nameOf(i)}"`).join(', ');
      const many = bad.length > 1;
      throw new Error(
        `site${many ? 's' : ''} ${names} ${many ? 'were' : 'was'} revoked after ${many ? 'their' : 'its'} masked update went into the sum; the round is discarded`,
      );
    }
  }

  private sendAll<T>(event: string, messages: Map<number, T>): void {
    for (const [i, msg] of messages) this.opts.transport.send(i, event, msg);
  }

  /**
   * Runs the stages once the round start went out, and returns the unmasked weighted mean. Throws
   * (the round fails) when too few sites remain at a stage or a revoked site's update is in the sum.
   */
  async aggregate(): Promise<AggregateResult> {
    const { stageTimeoutMs: stage, trainTimeoutMs: train } = this.opts;
    const all = this.config.participants.map((p) => p.index);
    await this.opts.onStage('advertise-keys');
    await this.collector.collect(all, stage + train / 10, 'secagg.advertise');
    const rosters = this.server.closeAdvertise();
    await this.opts.onStage('share-keys');
    this.sendAll('secagg.roster', rosters);
    await this.collector.collect(rosters.keys(), stage, 'secagg.shares');
    const inboxes = this.server.closeShareKeys();
    await this.opts.onStage('masked-input');
    this.sendAll('secagg.inbox', inboxes);
    await this.collector.collect(inboxes.keys(), train, 'secagg.masked-chunk');
    this.uploads.releaseAll();
    await this.refuseRevokedInputs();
    const lists = this.server.closeMaskedInput();
    await this.opts.onStage('consistency-check');
    this.sendAll('secagg.survivors', lists);
    await this.collector.collect(lists.keys(), stage, 'secagg.consistency');
    const checks = this.server.closeConsistency();
    await this.opts.onStage('unmask');
    this.sendAll('secagg.consistency-result', checks);
    await this.collector.collect(checks.keys(), stage, 'secagg.unmask');
    await this.refuseRevokedInputs();
    return this.server.finalize();
  }

  /** Asks the survivors still connected to score model `sha`, and waits for their reports. */
  async evaluate(survivors: number[], sha: string, modelBytes: number): Promise<void> {
    this.evaluating = sha;
    const evaluators = survivors.filter((i) => this.opts.transport.connected(i));
    for (const i of evaluators)
      this.opts.transport.send(i, 'round.evaluate', {
        roundId: this.config.roundId,
        modelHash: sha,
        modelBytes,
      });
    await this.collector.collect(evaluators, this.opts.trainTimeoutMs, 'round.eval-report');
  }

  /** The dropouts of a finished round with the reason where there is one. */
  dropoutsOf(result: AggregateResult): { siteId: string; stage: string; reason?: string }[] {
    return result.dropouts.map((d) => {
      const reason = this.revoked.has(d.index) ? 'revoked during the round' : this.gaveUp.get(d.index);
      return {
        siteId: this.config.participants[d.index - 1].siteId,
        stage: d.stage,
        ...(reason ? { reason } : {}),
      };
    });
  }

  /** No more messages are taken (the round ended). */
  close(): void {
    this.closed = true;
    this.uploads.releaseAll();
  }
}
