/**
 * One securely aggregated round with N protocol-level sites of D parameters, the sites in a separate
 * process on loopback, the coordinator (REST app, gateway, round engine) in this one. Prints, last,
 * one JSON object: roundMs, coordinatorCpuMs (this process, during the round), coordinatorPeakRssMB,
 * bytesInPerSite, plainBytesPerSite, and the round's outcome.
 *   npm run bench -w @fedsynth/coordinator -- --sites 50 --params 10000000 --dropout 0
 * Uses the PostgreSQL server of $DATABASE_URL (default: the local test server) so that the
 * embedded database's own memory does not count as the coordinator's.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeSafetensors } from '@fedsynth/diffusion/weights';
import { FederationEntity, SiteEntity } from '../db/entities';
import { freshPostgres } from '../db/testing';
import { AgentGateway } from '../gateway/agent-gateway';
import { createHttpApp } from '../http/app';
import { CoordinatorContext } from '../http/context';
import { RoundEngine } from '../rounds/round-engine';
import { benchKey } from './bench-clients';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sites: { type: 'string', default: '50' },
      params: { type: 'string', default: '10000000' },
      dropout: { type: 'string', default: '0' },
    },
  });
  const n = Number(values.sites);
  const D = Number(values.params);
  const dropCount = Math.round(n * Number(values.dropout));
  const drops = Array.from({ length: dropCount }, (_, j) => Math.floor((j * n) / dropCount));
  const db = await freshPostgres();
  const blobs = mkdtempSync(join(tmpdir(), 'fedsynth-bench-'));
  const ctx = new CoordinatorContext(db, 'bench', blobs);
  const fed = await ctx.federations.create({
    name: 'bench',
    plan: { minSites: 3, maxSites: n },
    secagg: { clip: 0.05, levels: 65536, maxWeight: 10_000, threatModel: 'active' },
  });
  const sites = db.dataSource.getRepository(SiteEntity);
  for (let k = 0; k < n; k++)
    await sites.save({
      federationId: fed.id,
      name: `site-${k}`,
      publicKey: Buffer.from(benchKey(k).publicKey),
      status: 'approved',
    });
  const sha = await ctx.checkpoints.put(
    encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [D], data: new Float32Array(D) }]),
  );
  await db.dataSource
    .getRepository(FederationEntity)
    .update({ id: fed.id }, { currentCheckpoint: sha, status: 'running' });
  const app = await createHttpApp(ctx);
  const gateway = new AgentGateway(app.getHttpServer(), ctx, {
    maxMessageBytes: 2 * 1024 * 1024,
    messagesPerSecond: 10_000,
    authTimeoutMs: 60_000,
    // Every benchmark site connects from loopback at once.
    unauthenticatedPerAddress: 10_000,
  });
  const engine = new RoundEngine(ctx, gateway, ctx.checkpoints, {
    stageTimeoutMs: 600_000,
    trainTimeoutMs: 1_200_000,
  });
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/agents`;
  const child = spawn(
    process.execPath,
    [
      join(__dirname, 'bench-clients.js'),
      '--url',
      url,
      '--sites',
      String(n),
      '--params',
      String(D),
      '--drop',
      drops.join(','),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) res();
    });
    child.on('exit', (c) => rej(new Error(`clients exited with ${c}`)));
  });
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const round = await engine.runRound(fed.id);
  const roundMs = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  child.stdin!.end();
  const survivors = n - round.dropouts.length;
  console.log(
    JSON.stringify({
      sites: n,
      params: D,
      dropped: round.dropouts.length,
      stage: round.stage,
      error: round.error,
      roundMs,
      coordinatorCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      // The split says where to look: user is JS and native code, system is the kernel (socket
      // reads, page faults of fresh buffers).
      coordinatorUserMs: Math.round(cpu.user / 1000),
      coordinatorSystemMs: Math.round(cpu.system / 1000),
      coordinatorPeakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      bytesInPerSite: Math.round(Number(round.bytesIn) / Math.max(1, survivors)),
      plainBytesPerSite: D * 4,
      peakConcurrentUploads: engine.lastPeakUploads,
    }),
  );
  await gateway.close();
  await app.close();
  await db.close();
  rmSync(blobs, { recursive: true, force: true });
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
