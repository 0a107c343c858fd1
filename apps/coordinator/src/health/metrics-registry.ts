import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { CoordinatorContext } from '../http/context';
import { ROUND_STAGES } from '../rounds/round-state';

/**
 * The coordinator's Prometheus metrics (prom-client): the process's own (memory, CPU, event-loop
 * lag, handles) and the federation state, read from the database when scraped, so every replica
 * reports the same figures.
 */
export function createMetricsRegistry(ctx: CoordinatorContext): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fedsynth_' });
  const ds = ctx.db.dataSource;
  // Counts of rows by one column, read when scraped.
  const countBy = (name: string, help: string, label: string, table: string) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      async collect() {
        this.reset();
        for (const r of await ds.query(
          `SELECT ${label} AS k, count(*)::int AS n FROM ${table} GROUP BY ${label}`,
        ))
          this.set({ [label]: r.k }, r.n);
      },
    });
  countBy('fedsynth_rounds_total', 'Rounds by final or current stage.', 'stage', 'rounds');
  countBy('fedsynth_sites', 'Enrolled sites by status.', 'status', 'sites');
  countBy('fedsynth_federations', 'Federations by status.', 'status', 'federations');
  new Gauge({
    name: 'fedsynth_round_bytes_total',
    help: 'Bytes received from and sent to sites in rounds.',
    labelNames: ['direction'],
    registers: [registry],
    async collect() {
      const [b] = await ds.query(
        'SELECT coalesce(sum(bytes_in), 0)::float8 AS bin, coalesce(sum(bytes_out), 0)::float8 AS bout FROM rounds',
      );
      this.set({ direction: 'in' }, Number(b.bin));
      this.set({ direction: 'out' }, Number(b.bout));
    },
  });
  new Gauge({
    name: 'fedsynth_stage_seconds',
    help: 'Mean duration of each round stage over the last 100 completed rounds.',
    labelNames: ['stage'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows: { stage_times: Record<string, string> }[] = await ds.query(
        "SELECT stage_times FROM rounds WHERE stage = 'completed' ORDER BY started_at DESC LIMIT 100",
      );
      const sums = new Map<string, { s: number; n: number }>();
      for (const { stage_times: t } of rows)
        for (let i = 0; i + 1 < ROUND_STAGES.length; i++) {
          const [a, b] = [t[ROUND_STAGES[i]], t[ROUND_STAGES[i + 1]]];
          if (!a || !b) continue;
          const e = sums.get(ROUND_STAGES[i]) ?? { s: 0, n: 0 };
          e.s += (Date.parse(b) - Date.parse(a)) / 1000;
          e.n += 1;
          sums.set(ROUND_STAGES[i], e);
        }
      for (const [stage, e] of sums) this.set({ stage }, e.s / e.n);
    },
  });
  new Gauge({
    name: 'fedsynth_connected_sites',
    help: 'Agents connected to this replica right now.',
    registers: [registry],
    collect() {
      this.set(ctx.connectedSites());
    },
  });
  new Gauge({
    name: 'fedsynth_uptime_seconds',
    help: 'Seconds since the coordinator started.',
    registers: [registry],
    collect() {
      this.set(Math.round((Date.now() - ctx.startedAt.getTime()) / 1000));
    },
  });
  return registry;
}
