import { abytes, equalBytes } from './bytes';
import { SHARE_CIPHERTEXT_BYTES } from './client';
import { ensure, SecAggErrorCode } from './errors';
import { neighbourhoods } from './graph';
import { deriveKey } from './kdf';
import { ed25519Verify, x25519FromSeed, x25519Shared } from './keys';
import {
  type AdvertiseKeysMessage,
  type AggregateResult,
  advertisePayload,
  type ConsistencyResultMessage,
  type ConsistencySignatureMessage,
  checkEnvelope,
  consistencyPayload,
  type KeyRosterMessage,
  type ShareInboxMessage,
  type ShareKeysMessage,
  type SurvivorListMessage,
  type UnmaskMessage,
} from './messages';
import { type RoundConfig, type SecAggStage, sessionId, validateRoundConfig } from './params';
import { CHUNK_ELEMENTS, Prg } from './prg';
import { dequantizeSum } from './quantize';
import { combineShares, SHARE_VALUE_BYTES } from './shamir';
import { ensureAdvertKeys } from './weak-keys';

export type ServerStage = SecAggStage | 'done' | 'failed';

/**
 * The coordinator's side of a round. It only routes signed keys and encrypted shares, adds masked
 * vectors into one running sum as their chunks arrive, and at the end removes the masks it can
 * reconstruct. `close*()` ends a stage with whoever answered in time; clients that did not are
 * dropouts at that stage. Memory: the running sum (one model-sized vector) plus the chunks of
 * masked vectors still being uploaded, kept so that an upload that never completes can be taken
 * back out of the sum exactly (the transport bounds how many uploads run at once).
 */
export class SecAggServer {
  readonly config: RoundConfig;
  readonly session: Uint8Array;
  private state: ServerStage = 'advertise-keys';
  private readonly indices: number[];
  private readonly neighbours: Map<number, number[]>;
  private readonly threshold: number;
  private readonly length: number;
  private readonly adverts = new Map<number, AdvertiseKeysMessage>();
  private readonly shareMsgs = new Map<number, ShareKeysMessage>();
  private sum?: Uint32Array;
  private readonly uploads = new Map<
    number,
    { next: number; chunks: { offset: number; data: Uint32Array }[] }
  >();
  private readonly completed = new Set<number>();
  private readonly signatures = new Map<number, Uint8Array>();
  private readonly unmasks = new Map<number, UnmaskMessage>();
  private u1: number[] = [];
  private u2: number[] = [];
  private u3: number[] = [];
  private u4: number[] = [];

  constructor(config: RoundConfig) {
    validateRoundConfig(config);
    this.config = config;
    this.session = sessionId(config);
    this.indices = config.participants.map((p) => p.index).sort((a, b) => a - b);
    this.neighbours = neighbourhoods(config, this.session);
    this.threshold = config.threshold;
    this.length = config.vectorLength + 1;
  }

  get stage(): ServerStage {
    return this.state;
  }

  /** Participants that have answered the current stage so far. */
  get answered(): number[] {
    switch (this.state) {
      case 'advertise-keys':
        return [...this.adverts.keys()].sort((a, b) => a - b);
      case 'share-keys':
        return [...this.shareMsgs.keys()].sort((a, b) => a - b);
      case 'masked-input':
        return [...this.completed].sort((a, b) => a - b);
      case 'consistency-check':
        return [...this.signatures.keys()].sort((a, b) => a - b);
      case 'unmask':
        return [...this.unmasks.keys()].sort((a, b) => a - b);
      default:
        return [];
    }
  }

  private expect(stage: SecAggStage, what: string): void {
    ensure(
      this.state === stage,
      SecAggErrorCode.ILLEGAL_TRANSITION,
      () => `${what} is not accepted in stage ${this.state}`,
    );
  }

  private checkEnvelope(msg: { roundId: string; sessionId: Uint8Array }, what: string): void {
    checkEnvelope(msg, this.config.roundId, this.session, what);
  }

  private requireAtLeastThreshold(set: number[], stage: SecAggStage): void {
    if (set.length < this.threshold) {
      this.state = 'failed';
      ensure(
        false,
        SecAggErrorCode.BELOW_THRESHOLD,
        `only ${set.length} sites completed ${stage}; the threshold is ${this.threshold}`,
      );
    }
  }

  private group(index: number): number[] {
    return [index, ...(this.neighbours.get(index) ?? [])];
  }

  /** Stage 0: accepts a site's signed key advert. */
  receiveAdvertise(msg: AdvertiseKeysMessage): void {
    this.expect('advertise-keys', 'an advert');
    this.checkEnvelope(msg, 'advert');
    const p = this.config.participants.find((x) => x.index === msg.sender);
    ensure(p, SecAggErrorCode.UNKNOWN_PARTICIPANT, () => `advert from unknown participant ${msg.sender}`);
    ensure(
      !this.adverts.has(msg.sender),
      SecAggErrorCode.DUPLICATE,
      () => `second advert from participant ${msg.sender}`,
    );
    abytes(msg.encryptionKey, 32, 'encryptionKey');
    abytes(msg.maskingKey, 32, 'maskingKey');
    ensureAdvertKeys(msg.sender, msg.encryptionKey, msg.maskingKey);
    ensure(
      ed25519Verify(
        p.identityKey,
        advertisePayload(this.session, msg.sender, msg.encryptionKey, msg.maskingKey),
        msg.signature,
      ),
      SecAggErrorCode.BAD_SIGNATURE,
      () => `advert of participant ${msg.sender} is not signed by its identity key`,
    );
    this.adverts.set(msg.sender, msg);
  }

  /** Ends stage 0: each advertiser gets the adverts of its neighbourhood. */
  closeAdvertise(): Map<number, KeyRosterMessage> {
    this.expect('advertise-keys', 'closing advertise-keys');
    this.u1 = [...this.adverts.keys()].sort((a, b) => a - b);
    this.requireAtLeastThreshold(this.u1, 'advertise-keys');
    const out = new Map<number, KeyRosterMessage>();
    for (const u of this.u1) {
      const adverts = this.group(u)
        .filter((v) => this.adverts.has(v))
        .map((v) => this.adverts.get(v)!);
      out.set(u, { roundId: this.config.roundId, sessionId: this.session, recipient: u, adverts });
    }
    this.state = 'share-keys';
    return out;
  }

  /** Stage 1: accepts a site's encrypted shares (routing only; the server cannot read them). */
  receiveShares(msg: ShareKeysMessage): void {
    this.expect('share-keys', 'shares');
    this.checkEnvelope(msg, 'shares');
    ensure(
      this.adverts.has(msg.sender),
      SecAggErrorCode.UNKNOWN_PARTICIPANT,
      () => `shares from ${msg.sender}, which did not advertise keys`,
    );
    ensure(
      !this.shareMsgs.has(msg.sender),
      SecAggErrorCode.DUPLICATE,
      () => `second set of shares from ${msg.sender}`,
    );
    ensure(Array.isArray(msg.shares), SecAggErrorCode.INVALID_ARGUMENT, 'shares must be an array');
    const allowed = new Set(this.group(msg.sender).filter((v) => v !== msg.sender && this.adverts.has(v)));
    const seen = new Set<number>();
    for (const s of msg.shares) {
      ensure(
        allowed.has(s.recipient),
        SecAggErrorCode.NOT_A_NEIGHBOUR,
        () => `share from ${msg.sender} to ${s.recipient}, not an advertised neighbour`,
      );
      ensure(
        !seen.has(s.recipient),
        SecAggErrorCode.DUPLICATE,
        () => `two shares from ${msg.sender} to ${s.recipient}`,
      );
      ensure(
        s.ciphertext instanceof Uint8Array && s.ciphertext.length === SHARE_CIPHERTEXT_BYTES,
        SecAggErrorCode.BAD_LENGTH,
        () => `share from ${msg.sender} to ${s.recipient} must be ${SHARE_CIPHERTEXT_BYTES} bytes`,
      );
      seen.add(s.recipient);
    }
    ensure(
      seen.size === allowed.size,
      SecAggErrorCode.INVALID_ARGUMENT,
      () => `participant ${msg.sender} sent ${seen.size} shares; its neighbourhood has ${allowed.size}`,
    );
    this.shareMsgs.set(msg.sender, msg);
  }

  /** Ends stage 1: each site that shared gets the ciphertexts addressed to it from the others that did. */
  closeShareKeys(): Map<number, ShareInboxMessage> {
    this.expect('share-keys', 'closing share-keys');
    this.u2 = [...this.shareMsgs.keys()].sort((a, b) => a - b);
    this.requireAtLeastThreshold(this.u2, 'share-keys');
    const out = new Map<number, ShareInboxMessage>();
    for (const v of this.u2)
      out.set(v, { roundId: this.config.roundId, sessionId: this.session, recipient: v, shares: [] });
    for (const u of this.u2) {
      for (const s of this.shareMsgs.get(u)!.shares) {
        out.get(s.recipient)?.shares.push({ sender: u, ciphertext: s.ciphertext });
      }
    }
    this.sum = new Uint32Array(this.length);
    this.state = 'masked-input';
    return out;
  }

  /** Stage 2: adds one chunk of a site's masked vector into the running sum (chunks in order). */
  receiveMaskedChunk(from: number, offset: number, data: Uint32Array): void {
    this.expect('masked-input', 'a masked chunk');
    ensure(
      this.shareMsgs.has(from),
      SecAggErrorCode.UNKNOWN_PARTICIPANT,
      () => `masked chunk from ${from}, which did not share keys`,
    );
    ensure(
      !this.completed.has(from),
      SecAggErrorCode.DUPLICATE,
      () => `masked chunk from ${from} after its vector was complete`,
    );
    ensure(
      data instanceof Uint32Array,
      SecAggErrorCode.INVALID_ARGUMENT,
      'masked chunk data must be a Uint32Array',
    );
    let up = this.uploads.get(from);
    if (!up) {
      up = { next: 0, chunks: [] };
      this.uploads.set(from, up);
    }
    ensure(
      offset === up.next,
      SecAggErrorCode.INVALID_ARGUMENT,
      () => `masked chunk from ${from} at offset ${offset}; expected ${up!.next}`,
    );
    ensure(
      data.length >= 1 && data.length <= CHUNK_ELEMENTS,
      SecAggErrorCode.BAD_LENGTH,
      () => `masked chunk from ${from} has ${data.length} elements (1..${CHUNK_ELEMENTS})`,
    );
    ensure(
      offset + data.length <= this.length,
      SecAggErrorCode.BAD_LENGTH,
      () => `masked vector from ${from} is longer than ${this.length} elements`,
    );
    const t = this.sum!.subarray(offset, offset + data.length);
    for (let i = 0; i < data.length; i++) t[i] += data[i];
    up.chunks.push({ offset, data });
    up.next += data.length;
  }

  /** Stage 2: marks a site's masked vector complete (it must have sent every element). */
  completeMaskedInput(from: number): void {
    this.expect('masked-input', 'completing a masked vector');
    const up = this.uploads.get(from);
    ensure(
      up && up.next === this.length,
      SecAggErrorCode.BAD_LENGTH,
      () => `masked vector from ${from} has ${up?.next ?? 0} of ${this.length} elements`,
    );
    this.completed.add(from);
    this.uploads.delete(from);
  }

  /** Ends stage 2: incomplete uploads are taken back out of the sum; survivors are asked to sign the list. */
  closeMaskedInput(): Map<number, SurvivorListMessage> {
    this.expect('masked-input', 'closing masked-input');
    for (const up of this.uploads.values()) {
      for (const c of up.chunks) {
        const t = this.sum!.subarray(c.offset, c.offset + c.data.length);
        for (let i = 0; i < c.data.length; i++) t[i] -= c.data[i];
      }
    }
    this.uploads.clear();
    this.u3 = [...this.completed].sort((a, b) => a - b);
    this.requireAtLeastThreshold(this.u3, 'masked-input');
    const out = new Map<number, SurvivorListMessage>();
    for (const v of this.u3)
      out.set(v, {
        roundId: this.config.roundId,
        sessionId: this.session,
        recipient: v,
        survivors: [...this.u3],
      });
    this.state = 'consistency-check';
    return out;
  }

  /** Stage 3: accepts a survivor's signature over the survivor list. */
  receiveConsistency(msg: ConsistencySignatureMessage): void {
    this.expect('consistency-check', 'a consistency signature');
    this.checkEnvelope(msg, 'consistency signature');
    ensure(
      this.u3.includes(msg.sender),
      SecAggErrorCode.UNKNOWN_PARTICIPANT,
      () => `consistency signature from ${msg.sender}, not a survivor`,
    );
    ensure(
      !this.signatures.has(msg.sender),
      SecAggErrorCode.DUPLICATE,
      () => `second consistency signature from ${msg.sender}`,
    );
    const p = this.config.participants.find((x) => x.index === msg.sender)!;
    ensure(
      ed25519Verify(p.identityKey, consistencyPayload(this.session, this.u3), msg.signature),
      SecAggErrorCode.BAD_SIGNATURE,
      () => `consistency signature of ${msg.sender} does not sign the survivor list`,
    );
    this.signatures.set(msg.sender, msg.signature);
  }

  /** Ends stage 3: signers get the list, the dropouts and all signatures. */
  closeConsistency(): Map<number, ConsistencyResultMessage> {
    this.expect('consistency-check', 'closing consistency-check');
    this.u4 = [...this.signatures.keys()].sort((a, b) => a - b);
    this.requireAtLeastThreshold(this.u4, 'consistency-check');
    const dropouts = this.u2.filter((u) => !this.completed.has(u));
    const signatures = this.u4.map((sender) => ({ sender, signature: this.signatures.get(sender)! }));
    const out = new Map<number, ConsistencyResultMessage>();
    for (const v of this.u4) {
      out.set(v, {
        roundId: this.config.roundId,
        sessionId: this.session,
        recipient: v,
        survivors: [...this.u3],
        dropouts,
        signatures,
      });
    }
    this.state = 'unmask';
    return out;
  }

  /** Stage 4: accepts a site's revealed shares. */
  receiveUnmask(msg: UnmaskMessage): void {
    this.expect('unmask', 'unmask shares');
    this.checkEnvelope(msg, 'unmask');
    ensure(
      this.u4.includes(msg.sender),
      SecAggErrorCode.UNKNOWN_PARTICIPANT,
      () => `unmask shares from ${msg.sender}, which did not sign the survivor list`,
    );
    ensure(
      !this.unmasks.has(msg.sender),
      SecAggErrorCode.DUPLICATE,
      () => `second unmask message from ${msg.sender}`,
    );
    const survivors = new Set(this.u3);
    const check = (list: UnmaskMessage['selfMaskShares'], wantSurvivor: boolean, what: string) => {
      ensure(Array.isArray(list), SecAggErrorCode.INVALID_ARGUMENT, `${what} must be an array`);
      const seen = new Set<number>();
      for (const s of list) {
        ensure(
          this.u2.includes(s.owner) && survivors.has(s.owner) === wantSurvivor,
          SecAggErrorCode.INVALID_ARGUMENT,
          () => `${what}: participant ${s.owner} is not a ${wantSurvivor ? 'survivor' : 'dropout'}`,
        );
        ensure(
          this.group(s.owner).includes(msg.sender),
          SecAggErrorCode.NOT_A_NEIGHBOUR,
          () => `${what}: ${msg.sender} holds no share of ${s.owner}`,
        );
        ensure(!seen.has(s.owner), SecAggErrorCode.DUPLICATE, () => `${what}: two shares of ${s.owner}`);
        abytes(s.share, SHARE_VALUE_BYTES, `${what} share of ${s.owner}`);
        seen.add(s.owner);
      }
    };
    check(msg.selfMaskShares, true, 'self-mask shares');
    check(msg.maskKeyShares, false, 'mask-key shares');
    this.unmasks.set(msg.sender, msg);
  }

  /**
   * Ends the round: reconstructs the survivors' self-mask seeds and the dropouts' mask keys, removes
   * every mask from the sum, and decodes the weighted mean.
   */
  finalize(): AggregateResult {
    this.expect('unmask', 'finalizing');
    const u5 = [...this.unmasks.keys()].sort((a, b) => a - b);
    this.requireAtLeastThreshold(u5, 'unmask');
    const sharesOf = (owner: number, kind: 'selfMaskShares' | 'maskKeyShares') => {
      const out: { x: number; y: Uint8Array }[] = [];
      for (const [sender, m] of this.unmasks) {
        const s = m[kind].find((r) => r.owner === owner);
        if (s) out.push({ x: sender, y: s.share });
      }
      return out;
    };
    const streams: { prg: Prg; sign: 1 | -1 }[] = [];
    for (const u of this.u3) {
      const shares = sharesOf(u, 'selfMaskShares');
      if (shares.length < this.threshold) {
        this.state = 'failed';
        ensure(
          false,
          SecAggErrorCode.BELOW_THRESHOLD,
          `only ${shares.length} self-mask shares of survivor ${u}; the threshold is ${this.threshold}`,
        );
      }
      streams.push({
        prg: new Prg(deriveKey(combineShares(shares, this.threshold), this.session, 'selfMask')),
        sign: -1,
      });
    }
    const dropouts = this.u2.filter((u) => !this.completed.has(u));
    const survivorSet = new Set(this.u3);
    for (const d of dropouts) {
      const shares = sharesOf(d, 'maskKeyShares');
      if (shares.length < this.threshold) {
        this.state = 'failed';
        ensure(
          false,
          SecAggErrorCode.BELOW_THRESHOLD,
          `only ${shares.length} mask-key shares of dropout ${d}; the threshold is ${this.threshold}`,
        );
      }
      const pair = x25519FromSeed(combineShares(shares, this.threshold));
      if (!equalBytes(pair.publicKey, this.adverts.get(d)!.maskingKey)) {
        this.state = 'failed';
        ensure(
          false,
          SecAggErrorCode.RECONSTRUCTION_FAILED,
          `reconstructed mask key of dropout ${d} does not match its advertised key`,
        );
      }
      for (const v of this.neighbours.get(d) ?? []) {
        if (!survivorSet.has(v)) continue;
        const shared = x25519Shared(pair, this.adverts.get(v)!.maskingKey);
        // Survivor v added +PRG(s_vd) when v < d and -PRG(s_vd) otherwise; take it back out.
        streams.push({ prg: new Prg(deriveKey(shared, this.session, 'pairwiseMask')), sign: v < d ? -1 : 1 });
      }
    }
    const sum = this.sum!;
    for (let o = 0; o < sum.length; o += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, sum.length - o);
      const t = sum.subarray(o, o + n);
      for (const { prg, sign } of streams) {
        const ks = prg.next(n);
        if (sign === 1) for (let i = 0; i < n; i++) t[i] += ks[i];
        else for (let i = 0; i < n; i++) t[i] -= ks[i];
      }
    }
    const decoded = dequantizeSum(sum, this.u3.length, this.config.quantization);
    const stageOf = (i: number): SecAggStage | null => {
      if (!this.adverts.has(i)) return 'advertise-keys';
      if (!this.shareMsgs.has(i)) return 'share-keys';
      if (!this.completed.has(i)) return 'masked-input';
      if (!this.signatures.has(i)) return 'consistency-check';
      if (!this.unmasks.has(i)) return 'unmask';
      return null;
    };
    this.state = 'done';
    return {
      sum,
      weightSum: decoded.weightFractionSum * this.config.quantization.maxWeight,
      mean: decoded.mean,
      errorBound: decoded.errorBound,
      survivors: [...this.u3],
      dropouts: this.indices.flatMap((i) => {
        const stage = stageOf(i);
        return stage ? [{ index: i, stage }] : [];
      }),
    };
  }
}
