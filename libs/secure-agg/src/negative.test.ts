import { describe, expect, it } from 'vitest';
import { fromHex } from './bytes';
import { SecAggClient } from './client';
import { SecAggErrorCode } from './errors';
import { ed25519Sign, ed25519Verify } from './keys';
import { advertisePayload, type ConsistencyResultMessage, type KeyRosterMessage } from './messages';
import { defaultThreshold, type RoundConfig, validateRoundConfig } from './params';
import { SecAggServer } from './server';
import { makeConfig, makeSites, type SimulatedSite, seededRandom } from './testing/simulate-round';

const Q = { clip: 1, levels: 2 ** 16, maxWeight: 10 };
const LEN = 8;

/** Drives n honest clients and the server up to (and including) the stage named. */
function setup(n = 5, roundId = 'fed:1', sites: SimulatedSite[] = makeSites(n, 'neg')) {
  const config = makeConfig(sites, {
    threshold: defaultThreshold(n),
    vectorLength: LEN,
    quantization: Q,
    roundId,
  });
  const server = new SecAggServer(config);
  const clients = new Map(
    sites.map((s) => [
      s.participant.index,
      new SecAggClient({
        config,
        selfIndex: s.participant.index,
        identitySecretKey: s.secretKey,
        random: seededRandom(`${roundId}/${s.participant.index}`),
      }),
    ]),
  );
  return { config, server, clients, sites };
}

function throughShareKeys(ctx: ReturnType<typeof setup>) {
  for (const c of ctx.clients.values()) ctx.server.receiveAdvertise(c.advertiseKeys());
  const rosters = ctx.server.closeAdvertise();
  const shares = new Map([...rosters].map(([i, r]) => [i, ctx.clients.get(i)!.shareKeys(r)]));
  for (const s of shares.values()) ctx.server.receiveShares(s);
  return { rosters, shares, inboxes: ctx.server.closeShareKeys() };
}

function throughConsistency(ctx: ReturnType<typeof setup>) {
  const { inboxes } = throughShareKeys(ctx);
  for (const [i, inbox] of inboxes) {
    for (const ch of ctx.clients
      .get(i)!
      .maskedInput(inbox, { values: new Float32Array(LEN).fill(0.1), weight: 1 })) {
      ctx.server.receiveMaskedChunk(i, ch.offset, ch.data);
    }
    ctx.server.completeMaskedInput(i);
  }
  const lists = ctx.server.closeMaskedInput();
  for (const [i, l] of lists) ctx.server.receiveConsistency(ctx.clients.get(i)!.consistencyCheck(l));
  return ctx.server.closeConsistency();
}

describe('refusals', () => {
  it('rejects a forged key signature, at the server and at every client', () => {
    const ctx = setup();
    const ads = [...ctx.clients.values()].map((c) => c.advertiseKeys());
    const forged = { ...ads[1], maskingKey: ads[0].maskingKey.slice().fill(7) };
    expect(() => ctx.server.receiveAdvertise(forged)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.BAD_SIGNATURE }),
    );
    // A malicious server relays the forged advert anyway: the client refuses the roster.
    const roster: KeyRosterMessage = {
      roundId: 'fed:1',
      sessionId: ads[0].sessionId,
      recipient: 1,
      adverts: [ads[0], forged, ...ads.slice(2)],
    };
    const c1 = ctx.clients.get(1)!;
    expect(() => c1.shareKeys(roster)).toThrow(/not signed by its identity key/);
    expect(c1.stage).toBe('failed');
  });

  it('rejects an advert carrying a low-order X25519 key, even when properly signed', () => {
    const ctx = setup();
    const ads = [...ctx.clients.values()].map((c) => c.advertiseKeys());
    // Site 2 is malicious: it advertises low-order keys (u = 1, and an order-8 u with the top bit
    // set; test-vectors/ed25519-weak-keys.json) and signs them with its real identity key.
    const lowU1 = fromHex('01'.padEnd(64, '0'));
    const lowU8 = fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880');
    const signed = (encryptionKey: Uint8Array, maskingKey: Uint8Array) => ({
      ...ads[1],
      encryptionKey,
      maskingKey,
      signature: ed25519Sign(
        ctx.sites[1].secretKey,
        advertisePayload(ctx.server.session, 2, encryptionKey, maskingKey),
      ),
    });
    const weakMask = signed(ads[1].encryptionKey, lowU8);
    expect(
      ed25519Verify(
        ctx.sites[1].participant.identityKey,
        advertisePayload(ctx.server.session, 2, weakMask.encryptionKey, weakMask.maskingKey),
        weakMask.signature,
      ),
    ).toBe(true);
    expect(() => ctx.server.receiveAdvertise(weakMask)).toThrow(
      expect.objectContaining({
        code: SecAggErrorCode.INVALID_ARGUMENT,
        message: 'advert of participant 2 has an unusable maskingKey: low-order point (order 8)',
      }),
    );
    // A malicious server relays such an advert anyway: the client refuses the roster.
    const weakEnc = signed(lowU1, ads[1].maskingKey);
    const roster: KeyRosterMessage = {
      roundId: 'fed:1',
      sessionId: ads[0].sessionId,
      recipient: 1,
      adverts: [ads[0], weakEnc, ...ads.slice(2)],
    };
    const c1 = ctx.clients.get(1)!;
    expect(() => c1.shareKeys(roster)).toThrow(
      expect.objectContaining({
        code: SecAggErrorCode.INVALID_ARGUMENT,
        message: 'advert of participant 2 has an unusable encryptionKey: low-order point (u = 1, order 4)',
      }),
    );
    expect(c1.stage).toBe('failed');
  });

  it("rejects duplicated keys and a roster that drops or changes the client's own advert", () => {
    const ctx = setup();
    const ads = [...ctx.clients.values()].map((c) => c.advertiseKeys());
    const dup: KeyRosterMessage = {
      roundId: 'fed:1',
      sessionId: ads[0].sessionId,
      recipient: 2,
      adverts: [...ads, ads[3]],
    };
    expect(() => ctx.clients.get(2)!.shareKeys(dup)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.DUPLICATE }),
    );
    const withoutOwn: KeyRosterMessage = {
      roundId: 'fed:1',
      sessionId: ads[0].sessionId,
      recipient: 3,
      adverts: ads.filter((a) => a.sender !== 3),
    };
    expect(() => ctx.clients.get(3)!.shareKeys(withoutOwn)).toThrow(/own advert/);
  });

  it('rejects a share replayed from another round', () => {
    const sites = makeSites(5, 'neg');
    const a = setup(5, 'fed:1', sites);
    const b = setup(5, 'fed:2', sites);
    const ra = throughShareKeys(a);
    const rb = throughShareKeys(b);
    const inbox = rb.inboxes.get(1)!;
    // The coordinator swaps one ciphertext for the same sender's ciphertext from round fed:1.
    const replayed = {
      ...inbox,
      shares: inbox.shares.map((s) =>
        s.sender === 2
          ? { sender: 2, ciphertext: ra.shares.get(2)!.shares.find((x) => x.recipient === 1)!.ciphertext }
          : s,
      ),
    };
    expect(() =>
      b.clients.get(1)!.maskedInput(replayed, { values: new Float32Array(LEN), weight: 1 }),
    ).toThrow(expect.objectContaining({ code: SecAggErrorCode.DECRYPTION_FAILED }));
    // And a whole message of another round is refused by its round id and session id.
    expect(() => b.server.receiveShares(ra.shares.get(3)!)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.ILLEGAL_TRANSITION }),
    );
  });

  it('refuses a server that asks for both shares of one peer', () => {
    const ctx = setup();
    const results = throughConsistency(ctx);
    const honest = results.get(1)!;
    const greedy: ConsistencyResultMessage = { ...honest, dropouts: [2] };
    expect(() => ctx.clients.get(1)!.unmask(greedy)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.BOTH_SHARES_REQUESTED }),
    );
  });

  it('refuses a survivor list below the threshold or different from the one signed', () => {
    const c = setup();
    const { inboxes } = throughShareKeys(c);
    for (const _chunk of c.clients
      .get(1)!
      .maskedInput(inboxes.get(1)!, { values: new Float32Array(LEN), weight: 1 })) {
      // the masked vector would be sent here
    }
    expect(() =>
      c.clients
        .get(1)!
        .consistencyCheck({ roundId: 'fed:1', sessionId: c.server.session, recipient: 1, survivors: [1, 2] }),
    ).toThrow(/threshold is 4/);
    expect(c.clients.get(1)!.stage).toBe('failed');
    const d = setup();
    const results = throughConsistency(d);
    const changed = { ...results.get(2)!, survivors: [1, 2, 3, 4] };
    expect(() => d.clients.get(2)!.unmask(changed)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.INCONSISTENT_SURVIVORS }),
    );
  });

  it('rejects a wrong-length input and a wrong-length or out-of-order masked chunk', () => {
    const ctx = setup();
    const { inboxes } = throughShareKeys(ctx);
    expect(() =>
      ctx.clients.get(1)!.maskedInput(inboxes.get(1)!, { values: new Float32Array(LEN + 1), weight: 1 }),
    ).toThrow(/input has 9 values; the round expects 8/);
    expect(() => ctx.server.receiveMaskedChunk(2, 0, new Uint32Array(LEN + 2))).toThrow(
      /longer than 9 elements/,
    );
    expect(() => ctx.server.receiveMaskedChunk(2, 3, new Uint32Array(2))).toThrow(/expected 0/);
    ctx.server.receiveMaskedChunk(3, 0, new Uint32Array(4));
    expect(() => ctx.server.completeMaskedInput(3)).toThrow(/has 4 of 9 elements/);
  });

  it('rejects NaN updates and weights outside [0, maxWeight]', () => {
    const ctx = setup();
    const { inboxes } = throughShareKeys(ctx);
    const v = new Float32Array(LEN);
    v[5] = Number.NaN;
    expect(() => ctx.clients.get(1)!.maskedInput(inboxes.get(1)!, { values: v, weight: 1 })).toThrow(
      /input value 5 is NaN/,
    );
    expect(() =>
      ctx.clients.get(2)!.maskedInput(inboxes.get(2)!, { values: new Float32Array(LEN), weight: 11 }),
    ).toThrow(/weight 11/);
  });

  it('refuses configurations that could wrap, or with a threshold below the majority bound', () => {
    const sites = makeSites(5, 'cfg');
    const ok: RoundConfig = makeConfig(sites, { threshold: 3, vectorLength: 4, quantization: Q });
    expect(() => validateRoundConfig(ok)).not.toThrow();
    expect(() => validateRoundConfig({ ...ok, quantization: { ...Q, levels: 2 ** 31 } })).toThrow(
      /could wrap the 2\^32 modulus/,
    );
    expect(() => validateRoundConfig({ ...ok, threshold: 2 })).toThrow(/below the majority bound/);
    expect(() => validateRoundConfig({ ...ok, modelHash: 'abc' })).toThrow(/modelHash/);
    expect(() => validateRoundConfig({ ...ok, participants: ok.participants.slice(0, 2) })).toThrow(
      /at least 3 sites/,
    );
    expect(defaultThreshold(4)).toBe(3);
    expect(defaultThreshold(4, 'honest-but-curious')).toBe(3);
    expect(defaultThreshold(3, 'honest-but-curious')).toBe(2);
    expect(defaultThreshold(30)).toBe(21);
  });
});

describe('stage transitions', () => {
  it('allows each client call only in its own stage, in order', () => {
    const ctx = setup();
    const c = ctx.clients.get(1)!;
    const fake = {} as never;
    expect(() => c.shareKeys(fake)).toThrow(
      expect.objectContaining({ code: SecAggErrorCode.ILLEGAL_TRANSITION }),
    );
    expect(() => c.maskedInput(fake, fake)).toThrow(/cannot run masked-input while in stage advertise-keys/);
    expect(() => c.consistencyCheck(fake)).toThrow(/cannot run consistency-check/);
    expect(() => c.unmask(fake)).toThrow(/cannot run unmask/);
    c.advertiseKeys();
    expect(c.stage).toBe('share-keys');
    expect(() => c.advertiseKeys()).toThrow(/cannot run advertise-keys while in stage share-keys/);
  });

  it('allows each server call only in its own stage, in order, and walks through every stage', () => {
    const ctx = setup();
    const s = ctx.server;
    const fake = {} as never;
    expect(() => s.receiveShares(fake)).toThrow(/not accepted in stage advertise-keys/);
    expect(() => s.receiveMaskedChunk(1, 0, new Uint32Array(1))).toThrow(/not accepted/);
    expect(() => s.receiveConsistency(fake)).toThrow(/not accepted/);
    expect(() => s.receiveUnmask(fake)).toThrow(/not accepted/);
    expect(() => s.closeShareKeys()).toThrow(/not accepted/);
    expect(() => s.finalize()).toThrow(/not accepted/);
    const results = throughConsistency(ctx);
    expect(s.stage).toBe('unmask');
    expect(() => s.closeAdvertise()).toThrow(/not accepted in stage unmask/);
    for (const [i, r] of results) s.receiveUnmask(ctx.clients.get(i)!.unmask(r));
    const out = s.finalize();
    expect(s.stage).toBe('done');
    expect(out.survivors).toEqual([1, 2, 3, 4, 5]);
    for (const c of ctx.clients.values()) expect(c.stage).toBe('done');
    expect(() => s.finalize()).toThrow(/not accepted in stage done/);
  });

  it('moves the server to failed when a stage closes below threshold', () => {
    const ctx = setup();
    const [a, b] = [...ctx.clients.values()];
    ctx.server.receiveAdvertise(a.advertiseKeys());
    ctx.server.receiveAdvertise(b.advertiseKeys());
    expect(() => ctx.server.closeAdvertise()).toThrow(
      /only 2 sites completed advertise-keys; the threshold is 4/,
    );
    expect(ctx.server.stage).toBe('failed');
  });
});
