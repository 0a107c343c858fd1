import { hkdfSync } from 'node:crypto';
import { abytes, utf8 } from './bytes';
import { ensure, SecAggErrorCode } from './errors';

/** HKDF-SHA256 (RFC 5869) from node:crypto. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  ensure(
    Number.isInteger(length) && length > 0 && length <= 255 * 32,
    SecAggErrorCode.INVALID_ARGUMENT,
    'bad HKDF length',
  );
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

/** Domain labels: each derived key has its own, so no key is ever used for two purposes. */
export const KDF_LABELS = {
  shareKey: 'fedsynth/secagg/v1/share-encryption-key',
  pairwiseMask: 'fedsynth/secagg/v1/pairwise-mask-seed',
  selfMask: 'fedsynth/secagg/v1/self-mask-seed',
  rounding: 'fedsynth/secagg/v1/stochastic-rounding',
  relabel: 'fedsynth/secagg/v1/graph-relabelling',
} as const;

/**
 * Derives a 32-byte key from a 32-byte secret, bound to the session id and a purpose label.
 * Session binding means a secret from one round can never key anything in another.
 */
export function deriveKey(
  secret: Uint8Array,
  sessionId: Uint8Array,
  label: keyof typeof KDF_LABELS,
): Uint8Array {
  abytes(secret, 32, 'secret');
  abytes(sessionId, 32, 'sessionId');
  return hkdfSha256(secret, sessionId, utf8(KDF_LABELS[label]), 32);
}
