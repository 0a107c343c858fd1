import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import { describe, expect, it, vi } from 'vitest';
import type { AuditRecord } from '../audit/audit-log';
import { log as logger } from '../logging/logger';
import { auditAction, auditTrail, describeRequest } from './audit-trail';

const q = (s = '') => new URLSearchParams(s);
const ID = '6f1c2a9e-5b4d-4c3b-9a2f-0e1d2c3b4a59';

describe('describeRequest', () => {
  it('names each route of the API with its target', () => {
    const cases: [string, string, string, string | null, string][] = [
      ['POST', '/api/federations', 'federation.create', null, 'mutation'],
      ['POST', `/api/federations/${ID}/start`, 'federation.start', ID, 'mutation'],
      ['POST', '/api/federations/fed-a/stop/', 'federation.stop', 'fed-a', 'mutation'],
      ['POST', `/api/federations/${ID}/explode`, 'federation.unknown-action', ID, 'mutation'],
      ['POST', `/api/federations/${ID}/enrollment-tokens`, 'enrollment-token.create', ID, 'mutation'],
      ['PUT', `/api/federations/${ID}/checkpoint`, 'model.upload', ID, 'mutation'],
      ['POST', '/api/tokens', 'token.create', null, 'mutation'],
      ['POST', `/api/tokens/${ID}/revoke`, 'token.revoke', ID, 'mutation'],
      ['POST', `/api/sites/${ID}/approve`, 'site.approve', ID, 'mutation'],
      ['POST', `/api/sites/${ID}/revoke`, 'site.revoke', ID, 'mutation'],
      ['POST', '/api/enroll', 'enroll', null, 'mutation'],
      ['GET', `/api/checkpoints/${'a'.repeat(64)}`, 'model.download', 'a'.repeat(64), 'sensitive'],
      ['GET', '/api/audit', 'audit.read', null, 'sensitive'],
      ['GET', `/api/federations/${ID}/metrics`, 'federation.metrics', ID, 'read'],
      ['GET', `/api/federations/${ID}/rounds`, 'federation.rounds', ID, 'read'],
      ['GET', '/api/federations', 'federation.list', null, 'read'],
      ['DELETE', '/api/anything', 'http.delete', null, 'mutation'],
      ['GET', '/health', 'http.get', null, 'read'],
    ];
    for (const [method, path, action, target, kind] of cases)
      expect(describeRequest(method, path, q()), `${method} ${path}`).toEqual({ action, target, kind });
  });

  it('tells per-site metric reads from global ones', () => {
    expect(describeRequest('GET', `/api/federations/${ID}/metrics`, q('perSite=1&format=csv'))).toEqual({
      action: 'metrics.per-site',
      target: ID,
      kind: 'sensitive',
    });
    expect(describeRequest('GET', `/api/federations/${ID}/metrics`, q('perSite=true')).action).toBe(
      'metrics.per-site',
    );
    expect(describeRequest('GET', `/api/federations/${ID}/metrics`, q('perSite=0')).action).toBe(
      'federation.metrics',
    );
  });

  it('keeps targets short and decoded', () => {
    expect(describeRequest('POST', '/api/federations/fed%2Da/start', q()).target).toBe('fed-a');
    expect(describeRequest('POST', '/api/federations/%E0%A4%A/start', q()).target).toBe('%E0%A4%A');
    expect(describeRequest('POST', `/api/federations/${'x'.repeat(400)}/start`, q()).target).toHaveLength(
      201,
    );
  });
});

describe('auditAction', () => {
  const mutation = describeRequest('POST', `/api/federations/${ID}/start`, q());
  const read = describeRequest('GET', `/api/federations/${ID}/rounds`, q());
  const download = describeRequest('GET', `/api/checkpoints/${'a'.repeat(64)}`, q());
  const enroll = describeRequest('POST', '/api/enroll', q());

  it('records mutations with any outcome, sensitive reads, refusals and failed authentications', () => {
    expect(auditAction(mutation, 201, true)).toBe('federation.start');
    expect(auditAction(mutation, 409, true)).toBe('federation.start');
    expect(auditAction(download, 200, true)).toBe('model.download');
    expect(auditAction(read, 403, true)).toBe('federation.rounds');
    expect(auditAction(read, 200, true)).toBeNull();
    expect(auditAction(read, 401, false)).toBe('auth.failed');
    expect(auditAction(mutation, 401, false)).toBe('auth.failed');
  });

  it('records anonymous requests only as failed authentications and enrollments, and no 429s', () => {
    expect(auditAction(enroll, 201, false)).toBe('enroll');
    expect(auditAction(enroll, 409, false)).toBe('enroll');
    expect(auditAction(describeRequest('POST', '/nowhere', q()), 404, false)).toBeNull();
    expect(auditAction(describeRequest('POST', '/nowhere', q()), 413, false)).toBeNull();
    expect(auditAction(mutation, 429, false)).toBeNull();
    expect(auditAction(mutation, 429, true)).toBeNull();
  });
});

describe('auditTrail middleware', () => {
  /** A request and response as Express hands them over, enough for the middleware. */
  function exchange(method: string, url: string, auth?: { id: string }) {
    const res = Object.assign(new EventEmitter(), { statusCode: 200, writableFinished: false });
    const req = {
      method,
      originalUrl: url,
      ip: '192.0.2.7',
      headers: {},
      socket: {},
      auth: auth && { ...auth, role: 'admin', label: 'ops', federations: null },
    };
    return {
      req: req as unknown as Request,
      res: res as unknown as Response,
      end: (status: number) => {
        res.statusCode = status;
        res.writableFinished = true;
        res.emit('finish');
        res.emit('close');
      },
      abort: () => res.emit('close'),
    };
  }

  it('records once per request, repeated sensitive reads once per window, and survives failing writes', async () => {
    let t = 0;
    const recorded: AuditRecord[] = [];
    let fail = false;
    const sut = auditTrail({
      record: async (e) => {
        if (fail) throw new Error('disk full');
        recorded.push(e);
      },
      now: () => t,
      repeatWindowMs: 60_000,
    });
    const run = (method: string, url: string, status: number, auth = { id: 'tok-1' }) => {
      const x = exchange(method, url, auth);
      sut(x.req, x.res, () => undefined);
      x.end(status);
      return x;
    };
    run('POST', `/api/federations/${ID}/start`, 201);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      actorTokenId: 'tok-1',
      actorLabel: 'ops',
      address: '192.0.2.7',
      method: 'POST',
      path: `/api/federations/${ID}/start`,
      status: 201,
      action: 'federation.start',
      target: ID,
      detail: null,
    });
    // A dashboard polling per-site figures every 2 s: one event a minute.
    for (let i = 0; i < 30; i++, t += 2000) run('GET', `/api/federations/${ID}/metrics?perSite=1`, 200);
    expect(recorded.filter((e) => e.action === 'metrics.per-site')).toHaveLength(1);
    run('GET', `/api/federations/${ID}/metrics?perSite=1`, 200);
    expect(recorded.filter((e) => e.action === 'metrics.per-site')).toHaveLength(2);
    // Downloads are never folded together.
    run('GET', `/api/checkpoints/${'b'.repeat(64)}`, 200);
    run('GET', `/api/checkpoints/${'b'.repeat(64)}`, 200);
    expect(recorded.filter((e) => e.action === 'model.download')).toHaveLength(2);
    // A connection closed before the answer was finished is recorded as aborted.
    const cut = exchange('PUT', `/api/federations/${ID}/checkpoint`, { id: 'tok-1' });
    sut(cut.req, cut.res, () => undefined);
    cut.abort();
    expect(recorded.at(-1)).toMatchObject({ action: 'model.upload', detail: { aborted: true } });
    // A failing write is logged (once a minute at most) and nothing is thrown.
    fail = true;
    const log = vi.spyOn(logger('audit'), 'error').mockImplementation(() => undefined);
    try {
      run('POST', `/api/federations/${ID}/stop`, 201);
      run('POST', `/api/federations/${ID}/stop`, 409);
      await new Promise((r) => setTimeout(r, 0));
      expect(log).toHaveBeenCalledTimes(1);
      expect(log.mock.calls[0]).toEqual([
        { err: expect.objectContaining({ message: 'disk full' }) },
        'recording an audit event failed',
      ]);
    } finally {
      log.mockRestore();
    }
  });
});
