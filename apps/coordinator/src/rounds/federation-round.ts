import { randomBytes } from 'node:crypto';
import {
  decodeSafetensors,
  encodeSafetensors,
  flattenCanonical,
  layoutOf,
  unflattenCanonical,
} from '@fedsynth/diffusion/weights';
import {
  controlScale,
  type FederationConfig,
  roundStartPayload,
  secureMetricsLayout,
} from '@fedsynth/protocol';
import { defaultThreshold, ed25519Sign, groupSize, type RoundConfig, sessionId } from '@fedsynth/secure-agg';
import { In } from 'typeorm';
import type { CheckpointStore } from '../checkpoints/checkpoint-store';
import { type FederationEntity, RoundEntity, SiteEntity } from '../db/entities';
import type { AgentGateway, AgentSession } from '../gateway/agent-gateway';
import type { CoordinatorContext } from '../http/context';
import { createStrategy, Scaffold } from '../strategies';
import { serverEmaStep } from '../strategies/server-ema';
import type { StrategyStateStore } from '../strategies/strategy-state-store';
import type { ModelServer } from './model-server';
import { federationOverBudget, noiseHistory } from './privacy-budget';
import { roundMetrics } from './round-metrics';
import type { RoundRecord, RoundRecords } from './round-records';
import { linkTransport } from './round-transport';
import { INITIAL_MODEL_ROUND, secureFigureRows } from './secure-figures';
import { SecureRound } from './secure-round';

/** Timing and memory bounds of rounds. */
export interface EngineOptions {
  /** Deadline of each secure-aggregation stage, unless the federation's plan sets stageSeconds. */
  stageTimeoutMs: number;
  /** Deadline of local training plus the upload, unless the plan sets trainSeconds. */
  trainTimeoutMs: number;
  /** Masked uploads one round receives at once (see UploadSlots). */
  maxConcurrentUploads?: number;
}

/** A round in progress: who takes part under which index, and its secure aggregation. */
export interface ActiveRound {
  federationId: string;
  roundId: string;
  record: RoundRecord;
  indexOf: Map<string, number>;
  sessions: Map<number, AgentSession>;
  secure: SecureRound | null;
  /** SCAFFOLD: the global control variate the round's sites may fetch, once there is one. */
  controlHash?: string;
}

/** What one federation's round needs from the coordinator. */
export interface RoundDeps {
  ctx: CoordinatorContext;
  gateway: AgentGateway;
  store: CheckpointStore;
  models: ModelServer;
  records: RoundRecords;
  strategyStates: StrategyStateStore;
  opts: EngineOptions;
  /** Makes the round reachable by the gateway's messages (and the shutdown) while it runs. */
  track(round: ActiveRound | null, federationId: string): void;
}

/**
 * The graph of a round: the configured one, or the complete graph when the sites are too few for
 * the configured degree; an odd degree on an odd number of sites (no such regular graph) is raised
 * by one.
 */
export function roundGraph(config: FederationConfig, sites: number): RoundConfig['graph'] {
  const g = config.secagg.graph;
  if (g.kind === 'complete') return g;
  let k = g.neighbours;
  if (k % 2 === 1 && sites % 2 === 1) k += 1;
  if (k >= sites - 1) return { kind: 'complete' };
  return { kind: 'harary', neighbours: k, seed: new Uint8Array(randomBytes(32)) };
}

/** Waits up to plan.waitSeconds for minSites approved sites of the federation to be online. */
async function onlineSites(
  deps: RoundDeps,
  fed: FederationEntity,
  config: FederationConfig,
): Promise<AgentSession[]> {
  const siteRepo = deps.ctx.db.dataSource.getRepository(SiteEntity);
  // A revoked site is never selected, even if a connection of it were still open somewhere.
  const onlineNow = async () => {
    const sessions = (await deps.gateway.allSessions()).filter((s) => s.federationId === fed.id);
    if (sessions.length === 0) return sessions;
    const approved = await siteRepo.findBy({ id: In(sessions.map((s) => s.siteId)), status: 'approved' });
    const ok = new Set(approved.map((x) => x.id));
    return sessions.filter((s) => ok.has(s.siteId));
  };
  const { minSites, waitSeconds } = config.plan;
  const waitUntil = Date.now() + waitSeconds * 1000;
  let online = await onlineNow();
  for (let polls = 1; online.length < minSites && Date.now() < waitUntil; polls++) {
    await new Promise((r) => setTimeout(r, 200));
    online = await onlineNow();
    // An admin may pause or stop the federation while it waits for sites.
    if (polls % 5 === 0) {
      const now = await deps.ctx.federations.get(fed.id);
      if (now.status !== 'running')
        throw new Error(`the federation was ${now.status} while the round waited for sites`);
    }
  }
  if (online.length < minSites)
    throw new Error(
      `too few sites online: ${online.length} of the ${minSites} needed after waiting ${waitSeconds} s`,
    );
  return online;
}

/**
 * Runs one round of a running federation to its end (completed or failed) and returns its record:
 * the federation's strategy chooses the sites and the plan, the secure round aggregates their
 * updates, the strategy applies the mean (carrying its optimizer state, saved beside the new
 * checkpoint), the sites score the new model (with privacy.secureMetrics their figures of the
 * starting model came inside the sum instead), and the round completes in one transaction.
 */
export async function runFederationRound(deps: RoundDeps, federationId: string): Promise<RoundEntity> {
  const { ctx } = deps;
  const fed = await ctx.federations.get(federationId);
  if (fed.status !== 'running') throw new Error(`federation "${fed.name}" is ${fed.status}, not running`);
  if (!fed.currentCheckpoint) throw new Error(`federation "${fed.name}" has no initial checkpoint`);
  const config = ctx.federations.configOf(fed);
  const checkpointIn = fed.currentCheckpoint;
  const record = await deps.records.open(fed.id, checkpointIn, fed.configVersion);
  const roundId = `${fed.id}:${record.row.number}`;
  const active: ActiveRound = {
    federationId: fed.id,
    roundId,
    record,
    indexOf: new Map(),
    sessions: new Map(),
    secure: null,
  };
  deps.track(active, fed.id);
  try {
    const strategy = createStrategy(config.strategy);
    const online = await onlineSites(deps, fed, config);
    const { siteIds, plan: strategyPlan } = strategy.configureRound({
      roundId,
      roundNumber: record.row.number,
      online: online.map((s) => s.siteId),
      config,
    });
    const chosen = siteIds.map((id) => online.find((s) => s.siteId === id)!);
    const sites = await ctx.db.dataSource.getRepository(SiteEntity).findBy({ id: In(siteIds) });
    const siteOf = new Map(sites.map((s) => [s.id, s]));
    const modelIn = await deps.models.bytes(checkpointIn);
    const model = decodeSafetensors(modelIn, checkpointIn);
    const vectorLength = model.arrays.reduce((n, t) => n + t.data.length, 0);
    // SCAFFOLD: each site's control variate follows its update in the masked vector.
    const scaffold = strategy instanceof Scaffold ? strategy : null;
    const updateLength = scaffold ? 2 * vectorLength : vectorLength;
    // privacy.secureMetrics: the sites' figures ride in slots after the model's values.
    const slots = config.privacy.secureMetrics ? secureMetricsLayout(config.task.target) : null;
    // The optimizer state that produced this model carries on; a changed strategy kind starts afresh.
    const saved = await deps.strategyStates.load(checkpointIn);
    if (saved && saved.kind === strategy.kind) strategy.loadState(saved, vectorLength);
    const plan = scaffold
      ? { ...strategyPlan, scaffold: await controlOffer(deps, active, scaffold, model, record.row.number) }
      : strategyPlan;
    const graph = roundGraph(config, chosen.length);
    const participants = chosen.map((s, i) => ({
      index: i + 1,
      siteId: s.siteId,
      identityKey: new Uint8Array(siteOf.get(s.siteId)!.publicKey),
    }));
    const secAgg: RoundConfig = {
      roundId,
      modelHash: checkpointIn,
      participants,
      threshold: defaultThreshold(groupSize({ participants, graph }), config.secagg.threatModel),
      graph,
      vectorLength: updateLength + (slots?.length ?? 0),
      quantization: {
        clip: config.secagg.clip,
        levels: config.secagg.levels,
        maxWeight: config.secagg.maxWeight,
      },
    };
    for (const p of participants) {
      active.indexOf.set(p.siteId, p.index);
      active.sessions.set(p.index, chosen[p.index - 1]);
    }
    const stageTimeoutMs = (config.plan.stageSeconds ?? deps.opts.stageTimeoutMs / 1000) * 1000;
    const trainTimeoutMs = (config.plan.trainSeconds ?? deps.opts.trainTimeoutMs / 1000) * 1000;
    const secure = new SecureRound({
      config: secAgg,
      transport: linkTransport(new Map([...active.sessions].map(([i, s]) => [i, s.socket]))),
      stageTimeoutMs,
      trainTimeoutMs,
      maxConcurrentUploads: deps.opts.maxConcurrentUploads ?? 8,
      onStage: (stage) => record.advance(stage),
      nameOf: (i) => siteOf.get(participants[i - 1].siteId)?.name ?? participants[i - 1].siteId,
      revokedNow: async () => {
        const revoked = await ctx.db.dataSource
          .getRepository(SiteEntity)
          .findBy({ id: In(siteIds), status: 'revoked' });
        return revoked.map((s) => active.indexOf.get(s.id)!);
      },
    });
    active.secure = secure;
    await record.participants(
      participants.map((p) => ({ index: p.index, siteId: p.siteId })),
      {
        graph: graph.kind,
        neighbours: graph.kind === 'harary' ? graph.neighbours : participants.length - 1,
        threshold: secAgg.threshold,
      },
    );
    const start = {
      federationId: fed.id,
      roundNumber: record.row.number,
      task: config.task,
      secAgg,
      modelBytes: modelIn.length,
      plan,
      deadlines: stageDeadlines(Date.now(), stageTimeoutMs, trainTimeoutMs),
      ...(slots ? { metrics: slots } : {}),
    };
    const signed = {
      ...start,
      signature: ed25519Sign(ctx.identity.secretKey, roundStartPayload(sessionId(secAgg), start)),
    };
    for (const s of chosen) s.socket.emit('round.start', signed);
    const result = await secure.aggregate();
    await record.advance('applying');
    const meanDelta = result.mean.subarray(0, vectorLength);
    const weights = scaffold
      ? scaffold.aggregateWithControl(
          flattenCanonical(model.arrays),
          meanDelta,
          unscaledControl(result.mean.subarray(vectorLength, updateLength), controlScale(plan)),
        )
      : strategy.aggregate(flattenCanonical(model.arrays), meanDelta);
    const next = encodeSafetensors(unflattenCanonical(weights, layoutOf(model.arrays)), model.metadata);
    // Stored, but no record names it until the round completes.
    const sha = await deps.store.put(next, { federationId: fed.id, roundNumber: record.row.number });
    await deps.strategyStates.save(sha, strategy);
    deps.models.keep(sha, next);
    // With a server moving average, the round publishes the average (scored, shown, downloaded);
    // sites train the next round from the strategy's weights. It starts at the last published model.
    let published: { sha: string; bytes: Uint8Array } | null = null;
    const decay = config.strategy.serverEma;
    if (decay > 0) {
      const previousSha = fed.currentModel ?? checkpointIn;
      const previous =
        previousSha === checkpointIn
          ? model
          : decodeSafetensors(await deps.models.bytes(previousSha), previousSha);
      const average = serverEmaStep(
        flattenCanonical(previous.arrays),
        weights,
        decay,
        await deps.records.completedCount(fed.id),
      );
      const bytes = encodeSafetensors(unflattenCanonical(average, layoutOf(model.arrays)), model.metadata);
      published = {
        sha: await deps.store.put(bytes, { federationId: fed.id, roundNumber: record.row.number }),
        bytes,
      };
      deps.models.keep(published.sha, bytes);
    }
    await record.advance('evaluating');
    // With the figures in the sum nobody is asked to evaluate: they describe the starting model.
    if (!slots)
      await secure.evaluate(result.survivors, published?.sha ?? sha, (published?.bytes ?? next).length);
    let secureRows: ReturnType<typeof secureFigureRows> = [];
    if (slots) {
      const modelRound = (await deps.records.producerOf(fed.id, checkpointIn)) ?? INITIAL_MODEL_ROUND;
      secureRows = secureFigureRows({
        federationId: fed.id,
        roundNumber: record.row.number,
        modelRound,
        slots,
        slotMeans: result.mean.subarray(updateLength),
        clip: secAgg.quantization.clip,
        errorBound: result.errorBound,
        sites: result.survivors.length,
        withModelFigures: !(await deps.records.hasEvaluation(fed.id, modelRound)),
      });
    }
    const dpHistory = config.dp.noiseMultiplier > 0 ? await noiseHistory(ctx, fed.id) : [];
    await record.complete({
      checkpointOut: sha,
      modelOut: published?.sha ?? null,
      dropouts: secure.dropoutsOf(result),
      bytesIn: secure.bytesIn,
      bytesOut: secure.bytesOut,
      metrics: [
        ...roundMetrics({
          federationId: fed.id,
          roundNumber: record.row.number,
          siteIdOf: (i) => participants[i - 1].siteId,
          survivors: result.survivors,
          // With the figures in the sum, no plain per-site figure is taken, even if one was sent.
          trainReports: slots ? new Map() : secure.trainReports,
          evalReports: slots ? new Map() : secure.evalReports,
          maxEvalCount: config.plan.maxEvalCount,
          dp: { ...config.dp, threshold: secAgg.threshold, history: dpHistory },
        }),
        ...secureRows,
      ],
    });
    // With an epsilon budget, the federation stops before a round would spend beyond it.
    const overBudget = await federationOverBudget(ctx, fed.id, config);
    if (overBudget) await ctx.federations.haltWithReason(fed.id, 'stopped', overBudget);
    // A federation with a round budget stops by itself once it is spent.
    const budget = config.plan.rounds;
    if (budget !== null && (await deps.records.completedCount(fed.id)) >= budget)
      await ctx.federations.haltWithReason(fed.id, 'stopped', `completed the ${budget} rounds of its plan`);
  } catch (err) {
    await record.fail((err as Error).message, {
      bytesIn: active.secure?.bytesIn ?? 0,
      bytesOut: active.secure?.bytesOut ?? 0,
    });
  } finally {
    active.secure?.close();
    deps.track(null, fed.id);
  }
  return ctx.db.dataSource.getRepository(RoundEntity).findOneByOrFail({ id: record.row.id });
}

/**
 * SCAFFOLD: the global control variate for the round's plan. Before the first SCAFFOLD round it is
 * zero and nothing is offered (sites start from zero); after, it is stored like a checkpoint, in
 * the model's tensor layout, and the round's sites may fetch it by the hash the signed plan names.
 */
async function controlOffer(
  deps: RoundDeps,
  active: ActiveRound,
  scaffold: Scaffold,
  model: ReturnType<typeof decodeSafetensors>,
  roundNumber: number,
): Promise<{ control?: { sha256: string; bytes: number } }> {
  const c = scaffold.control();
  if (!c) return {};
  const bytes = encodeSafetensors(unflattenCanonical(c, layoutOf(model.arrays)), {
    format: 'pt',
    'fedsynth.control': 'scaffold',
  });
  const sha256 = await deps.store.put(bytes, { federationId: active.federationId, roundNumber });
  deps.models.keep(sha256, bytes);
  active.controlHash = sha256;
  return { control: { sha256, bytes: bytes.length } };
}

/** The sites' mean control variate as they sent it (times controlScale), back in its own units. */
function unscaledControl(sent: Float32Array, scale: number): Float32Array {
  return Float32Array.from(sent, (x) => x / scale);
}

/**
 * The latest time each stage can end (ISO), if every earlier stage ran to its deadline; a stage ends
 * earlier when every participant has answered.
 */
export function stageDeadlines(now: number, stageMs: number, trainMs: number): Record<string, string> {
  let t = now;
  const at = (ms: number) => {
    t += ms;
    return new Date(t).toISOString();
  };
  return {
    'advertise-keys': at(stageMs + trainMs / 10),
    'share-keys': at(stageMs),
    'masked-input': at(trainMs),
    'consistency-check': at(stageMs),
    unmask: at(stageMs),
  };
}
