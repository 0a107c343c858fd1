import { ROUND_STAGES } from '../rounds/round-state';
import type { CoordinatorContext } from './context';

/** Prometheus text exposition of the coordinator's state (computed from the database on scrape). */
export async function promText(ctx: CoordinatorContext): Promise<string> {
  const ds = ctx.db.dataSource;
  const [rounds, sites, bytes, durations] = await Promise.all([
    ds.query('SELECT stage, count(*)::int AS n FROM rounds GROUP BY stage'),
    ds.query('SELECT status, count(*)::int AS n FROM sites GROUP BY status'),
    ds.query(
      'SELECT coalesce(sum(bytes_in), 0)::text AS bin, coalesce(sum(bytes_out), 0)::text AS bout FROM rounds',
    ),
    ds.query("SELECT stage_times FROM rounds WHERE stage = 'completed' ORDER BY started_at DESC LIMIT 100"),
  ]);
  // Mean seconds spent in each stage over the last 100 completed rounds.
  const order = ROUND_STAGES;
  const sums = new Map<string, { s: number; n: number }>();
  for (const { stage_times: t } of durations as { stage_times: Record<string, string> }[]) {
    for (let i = 0; i + 1 < order.length; i++) {
      if (!t[order[i]] || !t[order[i + 1]]) continue;
      const e = sums.get(order[i]) ?? { s: 0, n: 0 };
      e.s += (Date.parse(t[order[i + 1]]) - Date.parse(t[order[i]])) / 1000;
      e.n += 1;
      sums.set(order[i], e);
    }
  }
  const lines = [
    '# HELP fedsynth_rounds_total Rounds by final or current stage.',
    '# TYPE fedsynth_rounds_total gauge',
    ...rounds.map((r: { stage: string; n: number }) => `fedsynth_rounds_total{stage="${r.stage}"} ${r.n}`),
    '# HELP fedsynth_sites Enrolled sites by status.',
    '# TYPE fedsynth_sites gauge',
    ...sites.map((r: { status: string; n: number }) => `fedsynth_sites{status="${r.status}"} ${r.n}`),
    '# HELP fedsynth_round_bytes_total Bytes received from and sent to sites in rounds.',
    '# TYPE fedsynth_round_bytes_total counter',
    `fedsynth_round_bytes_total{direction="in"} ${bytes[0].bin}`,
    `fedsynth_round_bytes_total{direction="out"} ${bytes[0].bout}`,
    '# HELP fedsynth_stage_seconds Mean duration of each round stage over recent completed rounds.',
    '# TYPE fedsynth_stage_seconds gauge',
    ...[...sums].map(([st, e]) => `fedsynth_stage_seconds{stage="${st}"} ${(e.s / e.n).toFixed(3)}`),
    '# HELP fedsynth_connected_sites Agents connected right now.',
    '# TYPE fedsynth_connected_sites gauge',
    `fedsynth_connected_sites ${ctx.connectedSites()}`,
    '# HELP fedsynth_uptime_seconds Seconds since the coordinator started.',
    '# TYPE fedsynth_uptime_seconds gauge',
    `fedsynth_uptime_seconds ${Math.round((Date.now() - ctx.startedAt.getTime()) / 1000)}`,
  ];
  return `${lines.join('\n')}\n`;
}
