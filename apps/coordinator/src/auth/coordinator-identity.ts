import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';

/** The coordinator's Ed25519 identity: it signs every round start; sites pin its public key at enrollment. */
export interface CoordinatorIdentity {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A fresh identity (tests, or the first start). */
export function newCoordinatorIdentity(): CoordinatorIdentity {
  const kp = nacl.sign.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** Loads the identity from `path`, creating it (mode 0600) on first use. */
export function loadOrCreateCoordinatorIdentity(path: string): CoordinatorIdentity {
  if (existsSync(path)) {
    let raw: { secretKey?: string };
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      throw new Error(`${path}: the coordinator identity is not valid JSON`);
    }
    const secretKey = new Uint8Array(Buffer.from(String(raw.secretKey ?? ''), 'base64'));
    if (secretKey.length !== 64)
      throw new Error(`${path}: the coordinator identity does not hold a 64-byte Ed25519 secret key`);
    return { publicKey: nacl.sign.keyPair.fromSecretKey(secretKey).publicKey, secretKey };
  }
  const id = newCoordinatorIdentity();
  // With an external database nothing else may have made the data directory yet.
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(
    path,
    `${JSON.stringify({ kind: 'fedsynth-coordinator-identity', secretKey: Buffer.from(id.secretKey).toString('base64'), publicKey: Buffer.from(id.publicKey).toString('base64') }, null, 2)}\n`,
    { mode: 0o600, flag: 'wx' },
  );
  return id;
}
