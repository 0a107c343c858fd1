import { describe, expect, it } from 'vitest';
import { scrubSecrets, scrubUrl } from './redact';

describe('secrets in logged URLs and texts', () => {
  it('replaces the values of secret-looking query parameters and keeps the others', () => {
    expect(scrubUrl('/api/x?token=abc&perSite=1&adminToken=def&api_key=k&format=csv')).toEqual({
      path: '/api/x',
      query: 'token=[redacted]&perSite=1&adminToken=[redacted]&api_key=[redacted]&format=csv',
    });
    expect(scrubUrl('/health')).toEqual({ path: '/health' });
    expect(scrubUrl('/health?')).toEqual({ path: '/health' });
  });

  it('replaces API and enrollment tokens wherever they are, also percent-encoded in a path', () => {
    expect(scrubUrl('/api/fsk_abcDEF-123_x/y?q=fse_zzz')).toEqual({
      path: '/api/[redacted]/y',
      query: 'q=[redacted]',
    });
    expect(scrubUrl('/a/fsk%5Fsecret').path).toBe('/a/[redacted]');
    expect(scrubSecrets('Bearer fsk_abc, then fse_def.')).toBe('Bearer [redacted], then [redacted].');
  });
});
