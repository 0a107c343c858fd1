/**
 * A daily time window in local time during which the site accepts training rounds, e.g.
 * "20:00-06:00" (wraps past midnight). "always" means no restriction.
 */
export interface TrainingWindow {
  /** Minutes after local midnight; start === end means the whole day. */
  startMinute: number;
  endMinute: number;
  spec: string;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Parses "HH:MM-HH:MM" (24-hour clock) or "always"; the error names what is wrong. */
export function parseTrainingWindow(spec: string): TrainingWindow | null {
  const s = spec.trim();
  if (s === '' || s.toLowerCase() === 'always') return null;
  const parts = s.split('-');
  if (parts.length !== 2)
    throw new RangeError(`training window "${spec}" must look like 20:00-06:00 or "always"`);
  const [a, b] = parts.map((p) => p.trim());
  const ma = HHMM.exec(a);
  const mb = HHMM.exec(b);
  if (!ma) throw new RangeError(`training window start "${a}" is not a 24-hour HH:MM time`);
  if (!mb) throw new RangeError(`training window end "${b}" is not a 24-hour HH:MM time`);
  return {
    startMinute: Number(ma[1]) * 60 + Number(ma[2]),
    endMinute: Number(mb[1]) * 60 + Number(mb[2]),
    spec: `${a}-${b}`,
  };
}

/** Whether `when` (local time) falls inside the window; a null window is always open. */
export function isWithinWindow(window: TrainingWindow | null, when: Date = new Date()): boolean {
  if (!window) return true;
  const m = when.getHours() * 60 + when.getMinutes();
  const { startMinute: s, endMinute: e } = window;
  if (s === e) return true;
  return s < e ? m >= s && m < e : m >= s || m < e;
}
