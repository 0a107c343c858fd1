import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from './audit-log';

describe('AuditLog', () => {
  it('records type, exact size, sha256 and round of each payload, in order', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'fedsynth-audit-')), 'audit', 'egress.jsonl');
    const log = new AuditLog(path);
    const a = new Uint8Array([1, 2, 3]);
    const b = new Uint8Array(1000).fill(9);
    log.record('auth.response', a, null, new Date('2026-01-01T00:00:00Z'));
    log.record('secagg.masked-chunk', b, 'fed-1:3');
    const entries = AuditLog.read(path);
    expect(entries).toHaveLength(2);
    expect(entries[0]).toEqual({
      time: '2026-01-01T00:00:00.000Z',
      direction: 'out',
      type: 'auth.response',
      bytes: 3,
      sha256: createHash('sha256').update(a).digest('hex'),
      round: null,
    });
    expect(entries[1].bytes).toBe(1000);
    expect(entries[1].round).toBe('fed-1:3');
    expect(entries[1].sha256).toBe(createHash('sha256').update(b).digest('hex'));
  });

  it('names the figures that left masked inside a message, and only where there are some', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'fedsynth-audit-')), 'audit.jsonl');
    const log = new AuditLog(path);
    log.recordDigest('secagg.masked-chunk', 4096, 'a'.repeat(64), 'fed-1:2', {
      inside: ['train_loss', 'mae'],
    });
    log.recordDigest('secagg.masked-chunk', 4096, 'b'.repeat(64), 'fed-1:2', { inside: [] });
    const [first, second] = AuditLog.read(path);
    expect(first).toMatchObject({
      type: 'secagg.masked-chunk',
      round: 'fed-1:2',
      inside: ['train_loss', 'mae'],
    });
    expect(Object.keys(second)).not.toContain('inside');
  });

  it('reads an absent log as empty and names a corrupt line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-audit-'));
    expect(AuditLog.read(join(dir, 'none.jsonl'))).toEqual([]);
    const path = join(dir, 'egress.jsonl');
    new AuditLog(path).record('hello', new Uint8Array(1));
    appendFileSync(path, 'garbage\n');
    expect(() => AuditLog.read(path)).toThrow(/line 2/);
  });
});
