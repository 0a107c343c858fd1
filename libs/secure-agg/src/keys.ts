import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject, sign, verify } from 'node:crypto';
import { abytes } from './bytes';
import { SecAggError, SecAggErrorCode } from './errors';
import { ed25519PublicKeyProblem, isCanonicalScalar, isSmallOrderEncoding } from './weak-keys';

// DER prefixes for raw 32-byte keys (RFC 8410): node:crypto takes keys as KeyObjects, our wire
// format and tweetnacl use raw bytes. Both are the same X25519/Ed25519 keys.
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

/** An X25519 key pair held as raw bytes plus node's private KeyObject. */
export interface X25519KeyPair {
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

/** Makes an X25519 key pair from a 32-byte random seed (the private scalar before clamping). */
export function x25519FromSeed(seed: Uint8Array): X25519KeyPair {
  abytes(seed, 32, 'X25519 seed');
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { publicKey: new Uint8Array(spki.subarray(spki.length - 32)), privateKey };
}

function x25519Public(raw: Uint8Array): KeyObject {
  abytes(raw, 32, 'X25519 public key');
  return createPublicKey({ key: Buffer.concat([X25519_SPKI, raw]), format: 'der', type: 'spki' });
}

/** X25519 shared secret; refuses the all-zero output of a low-order public key. */
export function x25519Shared(own: X25519KeyPair, peerPublic: Uint8Array): Uint8Array {
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey: own.privateKey, publicKey: x25519Public(peerPublic) });
  } catch {
    throw new SecAggError(SecAggErrorCode.INVALID_ARGUMENT, 'peer X25519 public key is invalid');
  }
  if (out.every((b) => b === 0)) {
    throw new SecAggError(SecAggErrorCode.INVALID_ARGUMENT, 'peer X25519 public key has low order');
  }
  return new Uint8Array(out);
}

// Per key: the KeyObject, or null when ed25519PublicKeyProblem refuses the key. The BigInt key
// check costs 1-2 ms; verification of a known key then costs a map lookup.
const edPublicCache = new Map<string, KeyObject | null>();

function edPublic(raw: Uint8Array): KeyObject | null {
  if (!(raw instanceof Uint8Array) || raw.length !== 32) return null;
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex');
  let key = edPublicCache.get(id);
  if (key === undefined) {
    key =
      ed25519PublicKeyProblem(raw) === null
        ? createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' })
        : null;
    if (edPublicCache.size > 4096) edPublicCache.clear();
    edPublicCache.set(id, key);
  }
  return key;
}

/** Ed25519 signature with a tweetnacl-layout 64-byte secret key (seed || public key). */
export function ed25519Sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  abytes(secretKey, 64, 'Ed25519 secret key');
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8, secretKey.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  });
  return new Uint8Array(sign(null, message, key));
}

/**
 * Strict Ed25519 verification: node:crypto's check (about 100x faster than pure JS) behind the
 * checks it leaves out. Never throws; returns false when the public key has a problem (see
 * ed25519PublicKeyProblem: small-order, mixed-order, non-canonical or not a point), the signature
 * is not 64 bytes, its S is not below L, or its R is a small-order point.
 *
 * @param publicKey the signer's 32-byte public key
 * @param message the signed bytes
 * @param signature the 64-byte signature R || S
 * @returns whether the signature is valid and made under an acceptable key
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!isCanonicalScalar(signature.subarray(32))) return false;
  if (isSmallOrderEncoding(signature.subarray(0, 32))) return false;
  try {
    const key = edPublic(publicKey);
    return key !== null && verify(null, message, key, signature);
  } catch {
    return false;
  }
}
