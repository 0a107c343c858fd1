import { describe, expect, it } from 'vitest';
import { checkVersion, PROTOCOL_VERSION, ProtocolError, parseMessage } from './schemas';

const b = (n: number) => new Uint8Array(n);
const sha = 'a'.repeat(64);

describe('message schemas', () => {
  it('accepts well-formed messages and returns typed data', () => {
    const m = parseMessage('auth.response', {
      protocolVersion: 1,
      publicKey: b(32),
      nonce: b(32),
      signature: b(64),
      agentVersion: '0.1.0',
    });
    expect(m.publicKey.length).toBe(32);
    const start = parseMessage('round.start', {
      federationId: 'f1',
      roundNumber: 3,
      task: { sources: ['mr'], target: 'ct', context: 0 },
      modelBytes: 1000,
      deadlines: { 'share-keys': '2026-01-01T00:00:00Z' },
      signature: b(64),
      plan: {
        localSteps: 50,
        batchSize: 8,
        lr: 2e-4,
        size: 64,
        prediction: 'v',
        schedule: 'cosine',
        fedProxMu: 0,
        dp: { clip: 1, noiseMultiplier: 0, delta: 1e-5 },
      },
      secAgg: {
        roundId: 'f1:3',
        modelHash: sha,
        participants: [1, 2, 3].map((i) => ({ index: i, siteId: `s${i}`, identityKey: b(32) })),
        threshold: 2,
        graph: { kind: 'complete' },
        vectorLength: 10,
        quantization: { clip: 0.1, levels: 65536, maxWeight: 1000 },
      },
    });
    expect(start.secAgg.participants).toHaveLength(3);
  });

  it('names every bad field of a malformed message', () => {
    expect(() =>
      parseMessage('auth.response', {
        protocolVersion: 1,
        publicKey: b(31),
        nonce: b(32),
        signature: 'x',
        agentVersion: '1',
      }),
    ).toThrow(
      /auth\.response: publicKey: expected exactly 32 bytes of binary data; signature: expected exactly 64 bytes/,
    );
    expect(() =>
      parseMessage('round.eval-report', {
        roundId: 'r',
        modelHash: 'nothex',
        mae: Number.NaN,
        psnr: 1,
        ssim: 1,
        count: -1,
      }),
    ).toThrow(/modelHash.*mae.*count/s);
    expect(() =>
      parseMessage('blob.chunk', { transferId: 't', offset: 0, total: 5, data: b(2 * 1024 * 1024) }),
    ).toThrow(/at most/);
    expect(() => parseMessage('nope' as never, {})).toThrow(ProtocolError);
    expect(() => parseMessage('agent.hello', null)).toThrow(/agent\.hello/);
  });

  it('refuses another protocol version, saying which side to upgrade', () => {
    expect(() => checkVersion(PROTOCOL_VERSION)).not.toThrow();
    expect(() => checkVersion(0)).toThrow(/upgrade the agent/);
    expect(() => checkVersion(PROTOCOL_VERSION + 1)).toThrow(/upgrade the coordinator/);
    // An outdated agent prints the refusal as it is: it names both versions and the upgrade.
    expect(() => checkVersion(PROTOCOL_VERSION - 1)).toThrow(
      `this agent speaks protocol version ${PROTOCOL_VERSION - 1}; the coordinator speaks version ${PROTOCOL_VERSION}: upgrade the agent (npm install -g fedsynth-site-agent@latest`,
    );
  });
});
