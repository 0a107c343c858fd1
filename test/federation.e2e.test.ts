import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listSubjects, loadSlicePairs, readNifti } from '@fedsynth/imaging';
import { AGENT_TO_SERVER, MESSAGES, socketParser } from '@fedsynth/protocol';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, type RoundRecord } from '../apps/demo/src/local-federation';
import { AuditLog } from '../apps/site-agent/src/audit/audit-log';
import { capturedFederation } from './captured-federation';
import { tinyFederation } from './tiny-federation';
import { until } from './until';
import { groupMessages, parseConnection } from './wire-capture';

/**
 * The whole platform on loopback, every part its own process on the real PostgreSQL: a coordinator
 * and three site agents (one behind a capturing proxy) train the diffusion model on phantom data.
 */
const SIZE = 16;
// Honest-but-curious threshold: 2 of 3, so a round survives one site dying; site-1 talks to the
// coordinator through the capturing proxy.
const e2e = capturedFederation(
  'e2e',
  tinyFederation({ localSteps: 20 }, { threatModel: 'honest-but-curious' }),
  { seed: 10 },
);

const completed = (rs: RoundRecord[]) =>
  rs.filter((r) => r.stage === 'completed').sort((a, b) => a.number - b.number);

describe('a federation of three agent processes on the real PostgreSQL', () => {
  it('trains: two rounds complete and validation MAE after the last is lower than after round 0', async () => {
    const rounds = await e2e.fed.waitForRounds(e2e.federationId, 2, { timeoutMs: 240_000, maxFailures: 0 });
    const done = completed(rounds);
    const story = JSON.stringify(rounds.map((r) => [r.number, r.stage, r.error, r.dropouts]));
    expect(done.length, story).toBeGreaterThanOrEqual(2);
    for (const r of done.slice(0, 2)) {
      expect(r.participants, story).toHaveLength(3);
      expect(r.dropouts ?? [], story).toHaveLength(0);
      expect(r.checkpointOut).toMatch(/^[0-9a-f]{64}$/);
    }
    const metrics = await e2e.fed.metrics(e2e.federationId);
    const mae = (n: number) => metrics.find((m) => m.round === n && m.site === null && m.name === 'mae');
    const maes = JSON.stringify(metrics.filter((m) => m.site === null));
    console.info(
      `validation MAE (HU) after round 0: ${mae(0)?.value.toFixed(1)}, after round 1: ${mae(1)?.value.toFixed(1)}`,
    );
    expect(mae(0)?.count, maes).toBeGreaterThan(0);
    expect(mae(1)!.value, maes).toBeLessThan(mae(0)!.value);
    // Each round's model is the next round's starting point.
    expect(done[1].checkpointOut).not.toBe(done[0].checkpointOut);
  }, 300_000);

  it('an agent killed mid-round: the round completes with the other two', async () => {
    const before = completed(await e2e.fed.rounds(e2e.federationId)).length;
    const r = await until(
      'a round in masked-input',
      async () => (await e2e.fed.rounds(e2e.federationId)).find((x) => x.stage === 'masked-input'),
      180_000,
    );
    await e2e.fed.killAgent('site-3');
    const ended = await until(
      'that round to end',
      async () => {
        const x = (await e2e.fed.rounds(e2e.federationId)).find((y) => y.id === r.id)!;
        return ['completed', 'failed', 'aborted'].includes(x.stage) ? x : undefined;
      },
      180_000,
    );
    expect(ended.stage, ended.error ?? '').toBe('completed');
    expect(ended.dropouts).toHaveLength(1);
    expect(ended.dropouts![0].siteId).toBe(e2e.fed.agents.get('site-3')!.siteId);
    expect(completed(await e2e.fed.rounds(e2e.federationId)).length).toBe(before + 1);
    e2e.fed.startAgent('site-3');
  }, 300_000);

  it('the coordinator restarted between rounds: agents reconnect, training continues, nothing is lost', async () => {
    const beforeRounds = completed(await e2e.fed.rounds(e2e.federationId));
    const beforeMetrics = await e2e.fed.metrics(e2e.federationId);
    await e2e.fed.stopCoordinator('SIGKILL');
    await e2e.fed.startCoordinator();
    const after = await e2e.fed.waitForRounds(e2e.federationId, beforeRounds.length + 1, {
      timeoutMs: 240_000,
      maxFailures: 3,
    });
    const done = completed(after);
    // Every earlier round and metric is still there, unchanged.
    for (const r of beforeRounds) expect(done.find((x) => x.id === r.id)).toEqual(r);
    const metrics = await e2e.fed.metrics(e2e.federationId);
    for (const m of beforeMetrics) expect(metrics).toContainEqual(m);
    const last = done[done.length - 1];
    expect(last.number).toBeGreaterThan(beforeRounds[beforeRounds.length - 1].number);
    // A round left open by the kill is recorded as aborted, not silently dropped.
    for (const r of after.filter((x) => x.stage === 'aborted')) expect(r.error).toMatch(/restarted/);
  }, 300_000);

  it('the audit log accounts for every byte site-1 sent, and nothing but protocol messages left', async () => {
    await e2e.fed.killAgent('site-1', 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const audit = AuditLog.read(join(e2e.fed.agents.get('site-1')!.stateDir, 'audit.jsonl'));
    const wire: { type: string; bytes: number; sha256: string }[] = [];
    const allowed = new Set<string>(AGENT_TO_SERVER);
    let events = 0;
    for (const conn of e2e.capture.connections) {
      const { requests, frames } = parseConnection(Buffer.concat(conn.chunks));
      for (const q of requests) {
        if (q.method === 'POST') {
          expect(q.path).toBe('/api/enroll');
          wire.push({
            type: 'http.enroll',
            bytes: q.body.length,
            sha256: createHash('sha256').update(q.body).digest('hex'),
          });
        } else {
          // The websocket upgrade: no body, nothing about the site in the path.
          expect(q.method).toBe('GET');
          expect(q.path).toMatch(/^\/socket\.io\/\?EIO=4&transport=websocket$/);
          expect(q.body.length).toBe(0);
        }
      }
      const { messages, control } = groupMessages(frames);
      for (const c of control) expect(c).toMatch(/^(engine\.io 3|close)$/);
      for (const m of messages) {
        const decoder = new socketParser.Decoder();
        let packet: { type: number; nsp: string; data?: unknown[] } | undefined;
        decoder.on('decoded', (p: typeof packet) => {
          packet = p;
        });
        decoder.add(m.frames[0].subarray(1).toString('utf8'));
        for (const b of m.frames.slice(1)) decoder.add(b);
        expect(packet, m.header).toBeDefined();
        expect(packet!.nsp).toBe('/agents');
        let type: string;
        if (packet!.type === 0) type = 'socket.connect';
        else if (packet!.type === 1) type = 'socket.disconnect';
        else {
          expect([2, 5]).toContain(packet!.type);
          const [event, payload] = packet!.data as [string, unknown];
          expect(allowed.has(event), event).toBe(true);
          // Exactly the protocol's fields, nothing added.
          const schema = MESSAGES[event as keyof typeof MESSAGES] as unknown as {
            strict(): { parse(x: unknown): unknown };
          };
          schema.strict().parse(payload);
          type = event;
          events++;
        }
        wire.push({ type, bytes: m.bytes, sha256: m.sha256 });
      }
    }
    expect(events).toBeGreaterThan(20);
    const key = (e: { type: string; bytes: number; sha256: string }) => `${e.type} ${e.bytes} ${e.sha256}`;
    // Every message on the wire is in the audit log, and the log names nothing that did not leave.
    expect(wire.map(key).sort()).toEqual(audit.map(key).sort());
    expect(wire.filter((w) => w.type === 'secagg.masked-chunk').length).toBeGreaterThan(0);

    // No image content left: no 16-byte run of the site's voxels (as stored, or as the normalized
    // slices training uses) appears anywhere in what it sent.
    const sent = e2e.capture.allBytes();
    let probes = 0;
    for (const s of await listSubjects(e2e.dataDirs[0])) {
      const mr = await readNifti(s.sourcePath);
      const ct = await readNifti(s.targetPath);
      const f32 = Buffer.from(mr.data.buffer, mr.data.byteOffset, mr.data.byteLength);
      const i16 = Buffer.from(Int16Array.from(ct.data).buffer);
      const slices = await loadSlicePairs(s, { size: SIZE });
      const norm = slices.map((p) => Buffer.from(p.source.buffer, p.source.byteOffset, p.source.byteLength));
      for (const buf of [f32, i16, ...norm]) {
        for (let k = 0; k < 40; k++) {
          const at = Math.floor(((k + 0.5) / 40) * (buf.length - 16)) & ~3;
          const probe = buf.subarray(at, at + 16);
          if (probe.every((x) => x === probe[0])) continue; // background: constant runs prove nothing
          probes++;
          expect(sent.includes(probe)).toBe(false);
        }
      }
    }
    expect(probes).toBeGreaterThan(100);
  }, 120_000);

  it('synthesize writes a NIfTI with the input geometry from the latest global model', async () => {
    const stateDir = e2e.fed.agents.get('site-1')!.stateDir;
    const [subject] = await listSubjects(e2e.dataDirs[0]);
    const out = join(e2e.dir, 'sct.nii.gz');
    await promisify(execFile)(
      process.execPath,
      [
        AGENT_BIN,
        'synthesize',
        '--state-dir',
        stateDir,
        '--input',
        subject.sourcePath,
        '--out',
        out,
        '--steps',
        '4',
      ],
      { env: { ...process.env, FEDSYNTH_BACKEND: 'wasm' } },
    );
    const input = await readNifti(subject.sourcePath);
    const sct = await readNifti(out);
    expect(sct.dims).toEqual(input.dims);
    expect([...sct.affine]).toEqual([...input.affine]);
    const status = JSON.parse(readFileSync(join(stateDir, 'status.json'), 'utf8'));
    expect(status.latestModel).toContain(readFileSync(join(stateDir, 'models', 'latest'), 'utf8').trim());
    // Air outside the body, tissue values inside: a CT in HU, not a copy of the MRI.
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of sct.data) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    expect(lo).toBeLessThanOrEqual(-1000);
    expect(hi).toBeGreaterThan(-500);
  }, 120_000);
});
