import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { abytes, concatBytes, equalBytes, readU32be, u32be, wipe } from './bytes';
import { ensure, SecAggError, SecAggErrorCode } from './errors';
import { neighbourhoods } from './graph';
import { deriveKey } from './kdf';
import { ed25519Sign, ed25519Verify, type X25519KeyPair, x25519FromSeed, x25519Shared } from './keys';
import {
  type AdvertiseKeysMessage,
  advertisePayload,
  type ConsistencyResultMessage,
  type ConsistencySignatureMessage,
  checkEnvelope,
  consistencyPayload,
  type KeyRosterMessage,
  type MaskedChunk,
  type MaskedInputStream,
  type ShareInboxMessage,
  type ShareKeysMessage,
  type SurvivorListMessage,
  type UnmaskMessage,
} from './messages';
import { groupSize, type RoundConfig, type SecAggStage, sessionId, validateRoundConfig } from './params';
import { CHUNK_ELEMENTS, Prg } from './prg';
import { quantizeInto, quantizeWeight } from './quantize';
import { SHARE_VALUE_BYTES, type Share, splitSecret } from './shamir';
import { ensureAdvertKeys } from './weak-keys';

/** Plaintext of one encrypted share pair: sender, recipient, session, mask-key share, self-mask share. */
export const SHARE_PLAINTEXT_BYTES = 4 + 4 + 32 + 2 * SHARE_VALUE_BYTES;
/** Ciphertext of one share pair: 24-byte nonce, then secretbox (16-byte tag) of the plaintext. */
export const SHARE_CIPHERTEXT_BYTES =
  nacl.secretbox.nonceLength + nacl.secretbox.overheadLength + SHARE_PLAINTEXT_BYTES;

export type ClientStage = SecAggStage | 'done' | 'failed';

interface PeerKeys {
  encryptionKey: Uint8Array;
  maskingKey: Uint8Array;
}

/**
 * One site's side of a secure-aggregation round, as a state machine: each method is legal in exactly
 * one stage, validates everything it receives, and moves to the next stage. Any refusal moves the
 * client to 'failed' for good: a round is never resumed after a protocol violation.
 */
export class SecAggClient {
  readonly config: RoundConfig;
  readonly selfIndex: number;
  readonly session: Uint8Array;
  private state: ClientStage = 'advertise-keys';
  private readonly identitySecretKey: Uint8Array;
  private readonly random: (n: number) => Uint8Array;
  private readonly neighbours: Set<number>;
  private readonly threshold: number;
  private encPair?: X25519KeyPair;
  private maskPair?: X25519KeyPair;
  private maskSeed?: Uint8Array;
  private selfSeed?: Uint8Array;
  private ownAdvert?: AdvertiseKeysMessage;
  /** Keys of the neighbours (and self) that advertised: U1 within my neighbourhood. */
  private readonly roster = new Map<number, PeerKeys>();
  /** Shares I hold, by owner: [mask-key share, self-mask share]. Owners form U2 within my neighbourhood. */
  private readonly held = new Map<number, { maskKey: Share; selfMask: Share }>();
  private signedSurvivors?: number[];
  private readonly roundingSeed?: Uint8Array;

  constructor(opts: {
    config: RoundConfig;
    selfIndex: number;
    identitySecretKey: Uint8Array;
    random?: (n: number) => Uint8Array;
    /** Key of the stochastic-rounding PRG; fresh random by default (fixed only to reproduce an encoding). */
    roundingSeed?: Uint8Array;
  }) {
    validateRoundConfig(opts.config);
    abytes(opts.identitySecretKey, 64, 'identitySecretKey');
    this.config = opts.config;
    this.selfIndex = opts.selfIndex;
    const me = opts.config.participants.find((p) => p.index === opts.selfIndex);
    ensure(
      me,
      SecAggErrorCode.UNKNOWN_PARTICIPANT,
      `selfIndex ${opts.selfIndex} is not a participant of round ${opts.config.roundId}`,
    );
    ensure(
      equalBytes(me.identityKey, opts.identitySecretKey.subarray(32)),
      SecAggErrorCode.INVALID_ARGUMENT,
      'identitySecretKey does not belong to the participant at selfIndex',
    );
    this.identitySecretKey = opts.identitySecretKey;
    this.roundingSeed = opts.roundingSeed;
    this.random = opts.random ?? ((n) => new Uint8Array(randomBytes(n)));
    this.session = sessionId(opts.config);
    this.neighbours = new Set(neighbourhoods(opts.config, this.session).get(opts.selfIndex));
    this.threshold = opts.config.threshold;
    ensure(
      this.threshold <= groupSize(opts.config),
      SecAggErrorCode.INVALID_CONFIG,
      'threshold exceeds group size',
    );
  }

  /** The current stage; 'done' after unmask, 'failed' after any refusal. */
  get stage(): ClientStage {
    return this.state;
  }

  private expect(stage: SecAggStage): void {
    ensure(
      this.state === stage,
      SecAggErrorCode.ILLEGAL_TRANSITION,
      () => `client ${this.selfIndex}: cannot run ${stage} while in stage ${this.state}`,
    );
  }

  private guarded<T>(stage: SecAggStage, body: () => T): T {
    this.expect(stage);
    try {
      return body();
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  private checkEnvelope(msg: { roundId: string; sessionId: Uint8Array }, what: string): void {
    checkEnvelope(msg, this.config.roundId, this.session, what);
  }

  private inGroup(index: number): boolean {
    return index === this.selfIndex || this.neighbours.has(index);
  }

  /** Stage 0: makes two fresh X25519 key pairs and signs their public keys with the identity key. */
  advertiseKeys(): AdvertiseKeysMessage {
    return this.guarded('advertise-keys', () => {
      this.encPair = x25519FromSeed(this.random(32));
      this.maskSeed = this.random(32);
      this.maskPair = x25519FromSeed(this.maskSeed);
      const signature = ed25519Sign(
        this.identitySecretKey,
        advertisePayload(this.session, this.selfIndex, this.encPair.publicKey, this.maskPair.publicKey),
      );
      this.ownAdvert = {
        roundId: this.config.roundId,
        sessionId: this.session,
        sender: this.selfIndex,
        encryptionKey: this.encPair.publicKey,
        maskingKey: this.maskPair.publicKey,
        signature,
      };
      this.state = 'share-keys';
      return this.ownAdvert;
    });
  }

  /**
   * Stage 1: checks every relayed advert (signed by the right identity, for this session, no
   * duplicates, our own unchanged), then Shamir-shares the mask key and a fresh self-mask seed among
   * the neighbourhood, each share pair encrypted to its recipient.
   */
  shareKeys(roster: KeyRosterMessage): ShareKeysMessage {
    return this.guarded('share-keys', () => {
      this.checkEnvelope(roster, 'key roster');
      ensure(
        roster.recipient === this.selfIndex,
        SecAggErrorCode.INVALID_ARGUMENT,
        `key roster is addressed to ${roster.recipient}`,
      );
      ensure(Array.isArray(roster.adverts), SecAggErrorCode.INVALID_ARGUMENT, 'key roster has no adverts');
      const seenKeys = new Set<string>();
      for (const ad of roster.adverts) {
        this.checkEnvelope(ad, `advert of ${ad?.sender}`);
        const p = this.config.participants.find((x) => x.index === ad.sender);
        ensure(p, SecAggErrorCode.UNKNOWN_PARTICIPANT, () => `advert from unknown participant ${ad.sender}`);
        ensure(
          this.inGroup(ad.sender),
          SecAggErrorCode.NOT_A_NEIGHBOUR,
          () => `advert from ${ad.sender}, not a neighbour of ${this.selfIndex}`,
        );
        ensure(
          !this.roster.has(ad.sender),
          SecAggErrorCode.DUPLICATE,
          () => `two adverts from participant ${ad.sender}`,
        );
        abytes(ad.encryptionKey, 32, `advert ${ad.sender} encryptionKey`);
        abytes(ad.maskingKey, 32, `advert ${ad.sender} maskingKey`);
        ensureAdvertKeys(ad.sender, ad.encryptionKey, ad.maskingKey);
        ensure(
          ed25519Verify(
            p.identityKey,
            advertisePayload(this.session, ad.sender, ad.encryptionKey, ad.maskingKey),
            ad.signature,
          ),
          SecAggErrorCode.BAD_SIGNATURE,
          () => `advert of participant ${ad.sender} is not signed by its identity key`,
        );
        for (const k of [ad.encryptionKey, ad.maskingKey]) {
          const hex = Buffer.from(k).toString('hex');
          ensure(
            !seenKeys.has(hex),
            SecAggErrorCode.DUPLICATE,
            () => `advert of ${ad.sender} repeats a public key already advertised`,
          );
          seenKeys.add(hex);
        }
        this.roster.set(ad.sender, { encryptionKey: ad.encryptionKey, maskingKey: ad.maskingKey });
      }
      const own = this.roster.get(this.selfIndex);
      ensure(
        own &&
          equalBytes(own.encryptionKey, this.ownAdvert!.encryptionKey) &&
          equalBytes(own.maskingKey, this.ownAdvert!.maskingKey),
        SecAggErrorCode.INVALID_ARGUMENT,
        "key roster does not carry this client's own advert unchanged",
      );
      ensure(
        this.roster.size >= this.threshold,
        SecAggErrorCode.BELOW_THRESHOLD,
        () => `only ${this.roster.size} of the neighbourhood advertised keys; threshold is ${this.threshold}`,
      );
      this.selfSeed = this.random(32);
      const holders = [...this.roster.keys()].sort((a, b) => a - b);
      const maskShares = splitSecret(this.maskSeed!, this.threshold, holders, this.random);
      const selfShares = splitSecret(this.selfSeed, this.threshold, holders, this.random);
      const shares: ShareKeysMessage['shares'] = [];
      holders.forEach((v, i) => {
        if (v === this.selfIndex) {
          this.held.set(v, { maskKey: maskShares[i], selfMask: selfShares[i] });
          return;
        }
        const plaintext = concatBytes(
          u32be(this.selfIndex),
          u32be(v),
          this.session,
          maskShares[i].y,
          selfShares[i].y,
        );
        const key = this.shareKey(this.roster.get(v)!.encryptionKey);
        const nonce = this.random(nacl.secretbox.nonceLength);
        shares.push({ recipient: v, ciphertext: concatBytes(nonce, nacl.secretbox(plaintext, nonce, key)) });
        wipe(key, plaintext);
      });
      wipe(this.maskSeed!);
      this.state = 'masked-input';
      return { roundId: this.config.roundId, sessionId: this.session, sender: this.selfIndex, shares };
    });
  }

  private shareKey(peerEncryptionKey: Uint8Array): Uint8Array {
    const shared = x25519Shared(this.encPair!, peerEncryptionKey);
    const key = deriveKey(shared, this.session, 'shareKey');
    wipe(shared);
    return key;
  }

  /**
   * Stage 2: decrypts and checks the shares addressed to this client, then returns the masked
   * input as a stream of chunks: the encoded (clipped, weighted, stochastically rounded) values and
   * weight, plus the self mask and the pairwise masks with every neighbour that shared keys.
   */
  maskedInput(inbox: ShareInboxMessage, input: { values: Float32Array; weight: number }): MaskedInputStream {
    return this.guarded('masked-input', () => {
      this.checkEnvelope(inbox, 'share inbox');
      ensure(
        inbox.recipient === this.selfIndex,
        SecAggErrorCode.INVALID_ARGUMENT,
        `share inbox is addressed to ${inbox.recipient}`,
      );
      const { values, weight } = input;
      const q = this.config.quantization;
      ensure(
        values instanceof Float32Array,
        SecAggErrorCode.INVALID_ARGUMENT,
        'input values must be a Float32Array',
      );
      ensure(
        values.length === this.config.vectorLength,
        SecAggErrorCode.BAD_LENGTH,
        () => `input has ${values.length} values; the round expects ${this.config.vectorLength}`,
      );
      ensure(
        Number.isFinite(weight) && weight >= 0 && weight <= q.maxWeight,
        SecAggErrorCode.INVALID_ARGUMENT,
        () => `weight ${weight} must be in [0, ${q.maxWeight}]`,
      );
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]))
          throw new SecAggError(
            SecAggErrorCode.INVALID_ARGUMENT,
            `input value ${i} is ${values[i]}; refusing a non-finite update`,
          );
      }
      for (const s of inbox.shares) {
        ensure(
          this.roster.has(s.sender) && s.sender !== this.selfIndex,
          SecAggErrorCode.NOT_A_NEIGHBOUR,
          () => `share from ${s.sender}, which did not advertise in this neighbourhood`,
        );
        ensure(
          !this.held.has(s.sender),
          SecAggErrorCode.DUPLICATE,
          () => `two shares from participant ${s.sender}`,
        );
        ensure(
          s.ciphertext instanceof Uint8Array && s.ciphertext.length === SHARE_CIPHERTEXT_BYTES,
          SecAggErrorCode.BAD_LENGTH,
          () => `share from ${s.sender} must be ${SHARE_CIPHERTEXT_BYTES} bytes`,
        );
        const key = this.shareKey(this.roster.get(s.sender)!.encryptionKey);
        const nonce = s.ciphertext.subarray(0, nacl.secretbox.nonceLength);
        const pt = nacl.secretbox.open(s.ciphertext.subarray(nacl.secretbox.nonceLength), nonce, key);
        wipe(key);
        ensure(
          pt,
          SecAggErrorCode.DECRYPTION_FAILED,
          () => `share from ${s.sender} does not decrypt for this session (forged, corrupted or replayed)`,
        );
        ensure(
          readU32be(pt, 0) === s.sender &&
            readU32be(pt, 4) === this.selfIndex &&
            equalBytes(pt.subarray(8, 40), this.session),
          SecAggErrorCode.SHARE_MISMATCH,
          () => `share from ${s.sender} is bound to another sender, recipient or round`,
        );
        this.held.set(s.sender, {
          maskKey: { x: this.selfIndex, y: pt.slice(40, 40 + SHARE_VALUE_BYTES) },
          selfMask: { x: this.selfIndex, y: pt.slice(40 + SHARE_VALUE_BYTES) },
        });
      }
      ensure(
        this.held.size >= this.threshold,
        SecAggErrorCode.BELOW_THRESHOLD,
        () => `only ${this.held.size} of the neighbourhood shared keys; threshold is ${this.threshold}`,
      );
      // Masks: own self mask, and +/- a pairwise mask with each neighbour that shared keys (U2).
      const streams: { prg: Prg; sign: 1 | -1 }[] = [
        { prg: new Prg(deriveKey(this.selfSeed!, this.session, 'selfMask')), sign: 1 },
      ];
      for (const v of this.held.keys()) {
        if (v === this.selfIndex) continue;
        const shared = x25519Shared(this.maskPair!, this.roster.get(v)!.maskingKey);
        streams.push({
          prg: new Prg(deriveKey(shared, this.session, 'pairwiseMask')),
          sign: this.selfIndex < v ? 1 : -1,
        });
        wipe(shared);
      }
      wipe(this.selfSeed!);
      const rounding = new Prg(this.roundingSeed ?? this.random(32));
      const weightFraction = weight / q.maxWeight;
      const n = this.config.vectorLength;
      const length = n + 1;
      this.state = 'consistency-check';
      let consumed = false;
      return {
        length,
        chunkCount: Math.ceil(length / CHUNK_ELEMENTS),
        [Symbol.iterator]: function* (): Generator<MaskedChunk> {
          if (consumed)
            throw new SecAggError(
              SecAggErrorCode.ILLEGAL_TRANSITION,
              'the masked input stream can be read once',
            );
          consumed = true;
          for (let offset = 0; offset < length; offset += CHUNK_ELEMENTS) {
            const size = Math.min(CHUNK_ELEMENTS, length - offset);
            const data = new Uint32Array(size);
            const valueCount = Math.min(size, n - offset);
            if (valueCount > 0)
              quantizeInto(
                valueCount === size ? data : data.subarray(0, valueCount),
                values,
                offset,
                weightFraction,
                q,
                rounding,
              );
            if (offset + size === length) data[size - 1] = quantizeWeight(weightFraction, q, rounding);
            for (const { prg, sign } of streams) {
              const ks = prg.next(size);
              if (sign === 1) for (let i = 0; i < size; i++) data[i] += ks[i];
              else for (let i = 0; i < size; i++) data[i] -= ks[i];
            }
            yield { offset, data };
          }
        },
      };
    });
  }

  /** Stage 3: signs the survivor list after checking that it is plausible and includes this client. */
  consistencyCheck(msg: SurvivorListMessage): ConsistencySignatureMessage {
    return this.guarded('consistency-check', () => {
      this.checkEnvelope(msg, 'survivor list');
      ensure(
        msg.recipient === this.selfIndex,
        SecAggErrorCode.INVALID_ARGUMENT,
        `survivor list is addressed to ${msg.recipient}`,
      );
      const survivors = this.checkIndexList(msg.survivors, 'survivor list');
      ensure(
        survivors.includes(this.selfIndex),
        SecAggErrorCode.INCONSISTENT_SURVIVORS,
        'survivor list omits this client, which sent its masked input',
      );
      for (const s of survivors) {
        if (this.inGroup(s)) {
          ensure(
            this.held.has(s),
            SecAggErrorCode.INCONSISTENT_SURVIVORS,
            () => `survivor ${s} never shared keys with this client`,
          );
        }
      }
      const local = survivors.filter((s) => this.inGroup(s)).length;
      ensure(
        local >= this.threshold,
        SecAggErrorCode.BELOW_THRESHOLD,
        () => `survivor list has ${local} of this neighbourhood; threshold is ${this.threshold}`,
      );
      this.signedSurvivors = survivors;
      this.state = 'unmask';
      return {
        roundId: this.config.roundId,
        sessionId: this.session,
        sender: this.selfIndex,
        signature: ed25519Sign(this.identitySecretKey, consistencyPayload(this.session, survivors)),
      };
    });
  }

  private checkIndexList(list: unknown, what: string): number[] {
    ensure(Array.isArray(list), SecAggErrorCode.INVALID_ARGUMENT, `${what} must be an array`);
    const out = [...(list as number[])].sort((a, b) => a - b);
    const known = new Set(this.config.participants.map((p) => p.index));
    for (let i = 0; i < out.length; i++) {
      ensure(
        known.has(out[i]),
        SecAggErrorCode.UNKNOWN_PARTICIPANT,
        () => `${what} names unknown participant ${out[i]}`,
      );
      ensure(
        i === 0 || out[i] !== out[i - 1],
        SecAggErrorCode.DUPLICATE,
        () => `${what} names participant ${out[i]} twice`,
      );
    }
    return out;
  }

  /**
   * Stage 4: checks that at least t survivors signed the very list this client signed, then reveals
   * self-mask shares of survivors and mask-key shares of dropouts — never both for the same peer.
   */
  unmask(msg: ConsistencyResultMessage): UnmaskMessage {
    return this.guarded('unmask', () => {
      this.checkEnvelope(msg, 'consistency result');
      ensure(
        msg.recipient === this.selfIndex,
        SecAggErrorCode.INVALID_ARGUMENT,
        `consistency result is addressed to ${msg.recipient}`,
      );
      const survivors = this.checkIndexList(msg.survivors, 'survivor list');
      const dropouts = this.checkIndexList(msg.dropouts, 'dropout list');
      const mine = this.signedSurvivors!;
      ensure(
        survivors.length === mine.length && survivors.every((s, i) => s === mine[i]),
        SecAggErrorCode.INCONSISTENT_SURVIVORS,
        'the survivor list differs from the one this client signed',
      );
      const survivorSet = new Set(survivors);
      for (const d of dropouts) {
        ensure(
          !survivorSet.has(d),
          SecAggErrorCode.BOTH_SHARES_REQUESTED,
          () =>
            `participant ${d} is named both survivor and dropout: revealing both of its shares would expose its input`,
        );
      }
      const payload = consistencyPayload(this.session, survivors);
      const signers = new Set<number>();
      for (const s of msg.signatures ?? []) {
        if (!survivorSet.has(s.sender) || signers.has(s.sender)) continue;
        const p = this.config.participants.find((x) => x.index === s.sender)!;
        ensure(
          ed25519Verify(p.identityKey, payload, s.signature),
          SecAggErrorCode.BAD_SIGNATURE,
          () => `consistency signature of ${s.sender} is invalid`,
        );
        signers.add(s.sender);
      }
      ensure(
        signers.size >= this.threshold,
        SecAggErrorCode.BELOW_THRESHOLD,
        () => `only ${signers.size} valid consistency signatures; threshold is ${this.threshold}`,
      );
      const selfMaskShares: UnmaskMessage['selfMaskShares'] = [];
      const maskKeyShares: UnmaskMessage['maskKeyShares'] = [];
      const dropoutSet = new Set(dropouts);
      for (const [owner, held] of this.held) {
        if (survivorSet.has(owner)) selfMaskShares.push({ owner, share: held.selfMask.y });
        else if (dropoutSet.has(owner)) maskKeyShares.push({ owner, share: held.maskKey.y });
      }
      this.state = 'done';
      return {
        roundId: this.config.roundId,
        sessionId: this.session,
        sender: this.selfIndex,
        selfMaskShares,
        maskKeyShares,
      };
    });
  }
}
