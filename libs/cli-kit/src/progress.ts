/**
 * Progress reporting for long CLI work: a redrawn bar on a terminal, one JSON line per update
 * (at most every `minIntervalMs`) otherwise, so logs stay machine-readable.
 */
export interface Progress {
  tick(done: number, extra?: Record<string, string | number>): void;
  done(extra?: Record<string, string | number>): void;
}

export function createProgress(
  label: string,
  total: number,
  opts: { stream?: NodeJS.WriteStream; json?: boolean; minIntervalMs?: number } = {},
): Progress {
  const stream = opts.stream ?? process.stderr;
  const json = opts.json ?? !stream.isTTY;
  const interval = opts.minIntervalMs ?? (json ? 5000 : 100);
  const start = Date.now();
  let last = 0;
  const fmt = (extra?: Record<string, string | number>) =>
    extra
      ? Object.entries(extra)
          .map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`)
          .join('  ')
      : '';
  const draw = (done: number, extra?: Record<string, string | number>, final = false) => {
    const now = Date.now();
    if (!final && now - last < interval) return;
    last = now;
    const elapsed = (now - start) / 1000;
    if (json) {
      stream.write(
        `${JSON.stringify({ progress: label, done, total, elapsedS: Number(elapsed.toFixed(1)), ...extra })}\n`,
      );
      return;
    }
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 28;
    const filled = Math.round(frac * width);
    const eta = done > 0 && !final ? ` eta ${Math.round((elapsed / done) * (total - done))}s` : '';
    stream.write(
      `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${elapsed.toFixed(0)}s${eta} ${fmt(extra)}\x1b[K${final ? '\n' : ''}`,
    );
  };
  return {
    tick: (done, extra) => draw(done, extra),
    done: (extra) => draw(total, extra, true),
  };
}
