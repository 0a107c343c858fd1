import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';

/** A site's long-term Ed25519 identity: the public key enrolled at the coordinator. */
export interface IdentityKey {
  publicKey: Uint8Array; // 32 B
  secretKey: Uint8Array; // 64 B (tweetnacl layout: seed || public key)
}

interface IdentityFile {
  kind: 'fedsynth-identity';
  version: 1;
  algorithm: 'ed25519';
  publicKey: string; // base64
  secretKey: string; // base64, 64 B
  createdAt: string;
}

/** Thrown for a missing, unreadable, malformed or too widely readable key file. */
export class IdentityKeyError extends Error {
  constructor(
    readonly code: 'KEY_EXISTS' | 'KEY_MISSING' | 'KEY_MALFORMED' | 'KEY_PERMISSIONS',
    message: string,
  ) {
    super(message);
    this.name = 'IdentityKeyError';
  }
}

/** Makes a fresh identity key. `random` is injectable for tests (32-byte seed). */
export function generateIdentityKey(seed?: Uint8Array): IdentityKey {
  const kp = seed ? nacl.sign.keyPair.fromSeed(seed) : nacl.sign.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/**
 * Writes the key file with mode 0600 (owner read/write only); refuses to overwrite an existing
 * identity unless `overwrite` is set, since losing it means enrolling the site again.
 */
export async function writeIdentityKey(path: string, key: IdentityKey, overwrite = false): Promise<void> {
  const body: IdentityFile = {
    kind: 'fedsynth-identity',
    version: 1,
    algorithm: 'ed25519',
    publicKey: Buffer.from(key.publicKey).toString('base64'),
    secretKey: Buffer.from(key.secretKey).toString('base64'),
    createdAt: new Date().toISOString(),
  };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, `${JSON.stringify(body, null, 2)}\n`, {
      mode: 0o600,
      flag: overwrite ? 'w' : 'wx',
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new IdentityKeyError(
        'KEY_EXISTS',
        `identity key ${path} already exists; refusing to overwrite it`,
      );
    }
    throw err;
  }
  await chmod(path, 0o600);
}

/** Reads and checks the key file: permissions (no group/other access), format, key consistency. */
export async function readIdentityKey(path: string): Promise<IdentityKey> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    throw new IdentityKeyError(
      'KEY_MISSING',
      `identity key ${path} not found; run 'fedsynth-agent init' first`,
    );
  }
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new IdentityKeyError(
      'KEY_PERMISSIONS',
      `identity key ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run 'chmod 600 ${path}'`,
    );
  }
  let parsed: IdentityFile;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    throw new IdentityKeyError('KEY_MALFORMED', `identity key ${path} is not valid JSON`);
  }
  if (parsed?.kind !== 'fedsynth-identity' || parsed.algorithm !== 'ed25519') {
    throw new IdentityKeyError('KEY_MALFORMED', `identity key ${path} is not a fedsynth Ed25519 identity`);
  }
  const secretKey = new Uint8Array(Buffer.from(String(parsed.secretKey), 'base64'));
  const publicKey = new Uint8Array(Buffer.from(String(parsed.publicKey), 'base64'));
  if (secretKey.length !== 64 || publicKey.length !== 32) {
    throw new IdentityKeyError('KEY_MALFORMED', `identity key ${path} has keys of the wrong length`);
  }
  const derived = nacl.sign.keyPair.fromSeed(secretKey.subarray(0, 32)).publicKey;
  if (!Buffer.from(derived).equals(Buffer.from(publicKey))) {
    throw new IdentityKeyError(
      'KEY_MALFORMED',
      `identity key ${path}: public key does not match the secret key`,
    );
  }
  return { publicKey, secretKey };
}

/** Short, human-comparable fingerprint of a public key (first 16 hex chars of its SHA-256). */
export function fingerprint(publicKey: Uint8Array): string {
  return createHash('sha256')
    .update(publicKey)
    .digest('hex')
    .slice(0, 16)
    .replace(/(.{4})(?!$)/g, '$1:');
}
