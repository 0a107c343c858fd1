import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { duringAttack, http, streamBody, type Target, targetForFile } from './harness';

/**
 * The REST boundary under attack, against the built coordinator in its own process on the real
 * PostgreSQL: oversized and unauthenticated bodies, wrong media types, malformed ids, and what
 * the responses give away. Each test also checks that nothing was stored.
 */
// Failed authentications are part of these attacks; the throttle has its own test file.
const file = targetForFile('http', { args: ['--auth-failures', '100000'] });
let target: Target;
const MB = 1024 * 1024;

beforeAll(() => {
  target = file.get();
});

const federations = async () => (await http(target, 'GET', '/api/federations')).json as { name: string }[];

describe('HTTP bodies', () => {
  it('300 MB unauthenticated JSON bodies (with and without Content-Length) and an oversized admin body are refused before they are read: RSS grows < 64 MB, /health answers in < 1 s', async () => {
    const before = await federations();
    // Three attackers at once, each starting over as soon as it is refused, 150 times (135 GB
    // offered). A fixed count, not a fixed time: the coordinator reads ~64-256 KiB of each refused
    // connection and V8 frees those read buffers in batches, so peak RSS follows how many
    // connections came, and a time limit would make the test harsher on faster machines.
    const results: Awaited<ReturnType<typeof streamBody>>[][] = [];
    const attack = await duringAttack(target, async () => {
      while (results.length < 150) {
        results.push(
          await Promise.all([
            streamBody(target, {
              path: '/api/federations',
              headers: { 'content-type': 'application/json' },
              total: 300 * MB,
            }),
            streamBody(target, {
              path: '/api/federations',
              headers: { 'content-type': 'application/json' },
              total: 300 * MB,
              chunked: true,
            }),
            streamBody(target, {
              path: '/api/federations',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${target.admin}` },
              total: 300 * MB,
              chunked: true,
            }),
          ]),
        );
      }
    });
    const offered = results.length * 900;
    console.info(
      `under attack (${results.length} x 3 bodies, ${offered} MB offered): ${JSON.stringify(attack)}`,
    );
    for (const [unauth, unauthChunked, tooBig] of results) {
      expect(unauth.status).toBe(401);
      expect(unauthChunked.status).toBe(401);
      expect(tooBig.status).toBe(413);
      expect(JSON.parse(tooBig.body!).code).toBe('PAYLOAD_TOO_LARGE');
      // Nowhere near the 300 MB each client offered went in.
      for (const r of [unauth, unauthChunked, tooBig]) expect(r.sentBytes).toBeLessThan(300 * MB);
    }
    expect(attack.growthMiB).toBeLessThan(64);
    expect(attack.healthChecks).toBeGreaterThan(0);
    expect(attack.slowestHealthMs).toBeLessThan(1000);
    expect(await federations()).toEqual(before);
  }, 120_000);

  it('an admin JSON body over the route limit is refused from its Content-Length with 413', async () => {
    const r = await http(target, 'POST', '/api/federations', {
      body: JSON.stringify({ name: 'big', plan: { note: 'x'.repeat(100_000) } }),
    });
    expect(r.status).toBe(413);
    expect(r.json.message).toMatch(/at most 64 KiB/);
    expect((await federations()).map((f) => f.name)).not.toContain('big');
  });

  it('a form-urlencoded body is refused with 415 and creates nothing; a body that is not JSON gets 400', async () => {
    const form = await http(target, 'POST', '/api/federations', {
      body: 'name=from-a-form',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    expect(form.json.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const noType = await http(target, 'POST', '/api/federations', {
      body: '{"name":"no-type"}',
      headers: { 'content-type': '' },
    });
    expect(noType.status).toBe(415);
    const broken = await http(target, 'POST', '/api/federations', { body: '{"name": "broken"' });
    expect(broken.status).toBe(400);
    expect(broken.json.message).toBe('the request body is not valid JSON');
    expect((await federations()).map((f) => f.name)).toEqual([]);
  });

  it('a body on a route that takes none, and a public route with a large body, are refused unread', async () => {
    const get = await streamBody(target, { method: 'GET', path: '/health', total: 50 * MB });
    expect(get.status).toBe(413);
    const enroll = await streamBody(target, {
      path: '/api/enroll',
      headers: { 'content-type': 'application/json' },
      total: 50 * MB,
    });
    expect(enroll.status).toBe(413);
  });
});

describe('ids, errors and what responses give away', () => {
  it('malformed ids get 400 naming the id, unknown ones 404, never 500 or database text', async () => {
    const probes = [
      ['POST', '/api/sites/not-a-uuid/approve'],
      ['POST', `/api/sites/${'-'.repeat(36)}/revoke`],
      ['GET', `/api/federations/${encodeURIComponent("x' OR 1=1 --")}/rounds`],
      ['GET', `/api/federations/${'-'.repeat(36)}`],
      ['GET', '/api/checkpoints/not-a-sha'],
    ];
    for (const [method, path] of probes) {
      const r = await http(target, method, path);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
      expect(r.json.code).toBe('INVALID_INPUT');
      expect(r.text).not.toMatch(/QueryFailed|invalid input syntax|\.js:\d+/);
    }
    const unknown = await http(target, 'POST', '/api/sites/6f0e5d0c-1f4b-4c1e-9a52-2b7c0b6f1f10/approve');
    expect(unknown.status).toBe(404);
    const fedUnknown = await http(target, 'GET', '/api/federations/6f0e5d0c-1f4b-4c1e-9a52-2b7c0b6f1f10');
    expect(fedUnknown.status).toBe(404);
    // The database never saw them: no query error in the coordinator's log either.
    const log = readFileSync(join(file.dir(), 'work', 'coordinator.log'), 'utf8');
    expect(log).not.toMatch(/invalid input syntax|QueryFailedError/);
  });

  it('security headers on the dashboard and the API; no X-Powered-By; CORS closed', async () => {
    const page = await fetch(`${target.url}/`);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-inline/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-powered-by')).toBeNull();
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    // Plain HTTP here: no HSTS (see tls.test.ts for the TLS side).
    expect(page.headers.get('strict-transport-security')).toBeNull();
    const api = await http(target, 'GET', '/api/federations');
    expect(api.headers.get('x-powered-by')).toBeNull();
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
    // Cross-site callers get no CORS grant, for a simple request or a preflight.
    const cross = await http(target, 'GET', '/api/federations', {
      headers: { origin: 'https://evil.example' },
    });
    expect(cross.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${target.url}/api/federations`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-methods')).toBeNull();
  });
});
