import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { enrollmentPayload } from '@fedsynth/protocol';
import nacl from 'tweetnacl';
import type { AuditLog } from '../audit/audit-log';
import type { IdentityKey } from '../identity/identity-key';

/** What the coordinator said when the site enrolled; the coordinator key is pinned from here on. */
export interface Enrollment {
  coordinatorUrl: string;
  siteId: string;
  siteName: string;
  federationId: string;
  status: string;
  /** base64 Ed25519 key of the coordinator: only round starts signed with it are followed. */
  coordinatorKey: string;
  enrolledAt: string;
}

export function enrollmentPath(stateDir: string): string {
  return join(stateDir, 'enrollment.json');
}

/** The saved enrollment, or null when the site has not enrolled. */
export function readEnrollment(stateDir: string): Enrollment | null {
  try {
    return JSON.parse(readFileSync(enrollmentPath(stateDir), 'utf8')) as Enrollment;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${enrollmentPath(stateDir)} is unreadable: ${(err as Error).message}`);
  }
}

/** Raised when the coordinator refuses an enrollment or cannot be reached; the message says which. */
export class EnrollmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnrollmentError';
  }
}

/**
 * Registers the site's public key with a one-time token: signs (label, token, key) to prove it holds
 * the key, records the outbound request in the audit log, and saves what the coordinator answered.
 */
export async function enroll(opts: {
  coordinatorUrl: string;
  token: string;
  identity: IdentityKey;
  stateDir: string;
  audit: AuditLog;
  fetchImpl?: typeof fetch;
}): Promise<Enrollment> {
  const url = opts.coordinatorUrl.replace(/\/$/, '');
  const signature = nacl.sign.detached(
    enrollmentPayload(opts.token, opts.identity.publicKey),
    opts.identity.secretKey,
  );
  const body = JSON.stringify({
    token: opts.token,
    publicKey: Buffer.from(opts.identity.publicKey).toString('base64'),
    signature: Buffer.from(signature).toString('base64'),
  });
  opts.audit.record('http.enroll', new TextEncoder().encode(body), null);
  let res: Response;
  try {
    res = await (opts.fetchImpl ?? fetch)(`${url}/api/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new EnrollmentError(
      `cannot reach the coordinator at ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    throw new EnrollmentError(`${url}/api/enroll answered ${res.status} with something other than JSON`);
  }
  if (!res.ok) {
    throw new EnrollmentError(
      `the coordinator refused the enrollment (${json.code ?? res.status}): ${json.message ?? res.statusText}`,
    );
  }
  const e: Enrollment = {
    coordinatorUrl: url,
    siteId: String(json.siteId),
    siteName: String(json.name),
    federationId: String(json.federationId),
    status: String(json.status),
    coordinatorKey: String(json.coordinatorKey),
    enrolledAt: new Date().toISOString(),
  };
  if (Buffer.from(e.coordinatorKey, 'base64').length !== 32)
    throw new EnrollmentError('the coordinator answered without a valid coordinator key');
  await writeFile(enrollmentPath(opts.stateDir), `${JSON.stringify(e, null, 2)}\n`, { mode: 0o600 });
  return e;
}

/** Short fingerprint of the pinned coordinator key, for status output. */
export function keyFingerprint(b64: string): string {
  return createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').slice(0, 16);
}
