import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** One line of the audit log: a message that left the site. */
export interface AuditEntry {
  time: string; // ISO 8601
  direction: 'out';
  type: string; // protocol message type
  bytes: number; // exact bytes of the encoded payload
  sha256: string; // hex digest of those bytes
  round: string | null; // round id, when the message belongs to one
  /** Figures that left masked inside this message (a masked-vector chunk), never in plain text. */
  inside?: string[];
}

/**
 * Append-only JSON-lines record of every outbound message, written synchronously before the
 * message is sent, so that a crash can never send something that is not in the log.
 */
export class AuditLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  /** Records one outbound payload and returns the entry written. */
  record(type: string, payload: Uint8Array, round: string | null = null, now = new Date()): AuditEntry {
    const entry: AuditEntry = {
      time: now.toISOString(),
      direction: 'out',
      type,
      bytes: payload.byteLength,
      sha256: createHash('sha256').update(payload).digest('hex'),
      round,
    };
    appendFileSync(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    return entry;
  }

  /**
   * Records an outbound message by its size and digest (when the bytes were hashed as they were
   * framed); `inside` names the figures masked inside it.
   */
  recordDigest(
    type: string,
    bytes: number,
    sha256: string,
    round: string | null,
    opts: { now?: Date; inside?: readonly string[] } = {},
  ): AuditEntry {
    const now = opts.now ?? new Date();
    const entry: AuditEntry = {
      time: now.toISOString(),
      direction: 'out',
      type,
      bytes,
      sha256,
      round,
      ...(opts.inside?.length ? { inside: [...opts.inside] } : {}),
    };
    appendFileSync(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    return entry;
  }

  /** Reads every entry; a malformed line is reported with its line number. */
  static read(path: string): AuditEntry[] {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: AuditEntry[] = [];
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        out.push(JSON.parse(line) as AuditEntry);
      } catch {
        throw new Error(`audit log ${path}: line ${i + 1} is not valid JSON`);
      }
    });
    return out;
  }
}
