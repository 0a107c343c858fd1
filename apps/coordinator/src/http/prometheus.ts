import type { CoordinatorContext } from './context';

/** Prometheus text exposition of the coordinator's state (computed from the database on scrape). */
export async function promText(ctx: CoordinatorContext): Promise<string> {
  const ds = ctx.db.dataSource;
  const [rounds, sites, bytes] = await Promise.all([
    ds.query('SELECT stage, count(*)::int AS n FROM rounds GROUP BY stage'),
    ds.query('SELECT status, count(*)::int AS n FROM sites GROUP BY status'),
    ds.query(
      'SELECT coalesce(sum(bytes_in), 0)::text AS bin, coalesce(sum(bytes_out), 0)::text AS bout FROM rounds',
    ),
  ]);
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
    '# HELP fedsynth_uptime_seconds Seconds since the coordinator started.',
    '# TYPE fedsynth_uptime_seconds gauge',
    `fedsynth_uptime_seconds ${Math.round((Date.now() - ctx.startedAt.getTime()) / 1000)}`,
  ];
  return `${lines.join('\n')}\n`;
}
