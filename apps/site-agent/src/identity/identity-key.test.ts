import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { chmod, mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import {
  fingerprint,
  generateIdentityKey,
  IdentityKeyError,
  readIdentityKey,
  writeIdentityKey,
} from './identity-key';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'fedsynth-identity-'));
}

describe('identity key file', () => {
  it('is written with mode 0600, reads back identically and signs verifiably with node:crypto', async () => {
    const path = join(await tmp(), 'keys', 'identity.json');
    const key = generateIdentityKey(new Uint8Array(32).fill(7));
    await writeIdentityKey(path, key);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const back = await readIdentityKey(path);
    expect(Buffer.from(back.secretKey).equals(Buffer.from(key.secretKey))).toBe(true);
    const msg = Buffer.from('challenge');
    const sig = nacl.sign.detached(msg, back.secretKey);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(back.publicKey)]);
    const pub = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    expect(nodeVerify(null, msg, pub, sig)).toBe(true);
  });

  it('refuses to overwrite an existing identity', async () => {
    const path = join(await tmp(), 'identity.json');
    await writeIdentityKey(path, generateIdentityKey());
    await expect(writeIdentityKey(path, generateIdentityKey())).rejects.toMatchObject({ code: 'KEY_EXISTS' });
  });

  it('names the problem for a missing, group-readable, malformed or inconsistent file', async () => {
    const dir = await tmp();
    await expect(readIdentityKey(join(dir, 'nope.json'))).rejects.toThrow(/fedsynth-agent init/);
    const path = join(dir, 'identity.json');
    await writeIdentityKey(path, generateIdentityKey());
    await chmod(path, 0o644);
    await expect(readIdentityKey(path)).rejects.toMatchObject({ code: 'KEY_PERMISSIONS' });
    await writeFile(path, '{not json', { mode: 0o600 });
    await chmod(path, 0o600);
    await expect(readIdentityKey(path)).rejects.toMatchObject({ code: 'KEY_MALFORMED' });
    const a = generateIdentityKey();
    const b = generateIdentityKey();
    await writeIdentityKey(path, { publicKey: b.publicKey, secretKey: a.secretKey }, true);
    await expect(readIdentityKey(path)).rejects.toThrow(IdentityKeyError);
    await expect(readIdentityKey(path)).rejects.toThrow(/does not match/);
  });

  it('fingerprints keys as grouped hex that differs between keys', () => {
    const a = fingerprint(generateIdentityKey(new Uint8Array(32).fill(1)).publicKey);
    const b = fingerprint(generateIdentityKey(new Uint8Array(32).fill(2)).publicKey);
    expect(a).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
    expect(a).not.toBe(b);
  });
});
