/** A day range as the usage page asks for it: [from, to) in UTC, `to` exclusive. */
export interface DayRange {
  /** First day, YYYY-MM-DD. */
  from: string;
  /** Last day included, YYYY-MM-DD. */
  to: string;
}

const DAY = 86_400_000;

export function dayOf(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The last `days` days up to and including today (UTC). */
export function lastDays(days: number, now = new Date()): DayRange {
  return { from: dayOf(new Date(now.getTime() - (days - 1) * DAY)), to: dayOf(now) };
}

/** The instants usage.summary takes: the start of `from` and the start of the day after `to`. */
export function toInstants(range: DayRange): { from: string; to: string } {
  const from = new Date(`${range.from}T00:00:00.000Z`);
  const to = new Date(new Date(`${range.to}T00:00:00.000Z`).getTime() + DAY);
  return { from: from.toISOString(), to: to.toISOString() };
}

/** Every day of the range, in order (empty when it is inverted or not dates). */
export function daysOf(range: DayRange): string[] {
  const start = Date.parse(`${range.from}T00:00:00.000Z`);
  const end = Date.parse(`${range.to}T00:00:00.000Z`);
  if (Number.isNaN(start) || Number.isNaN(end) || end < start) return [];
  const days: string[] = [];
  for (let t = start; t <= end && days.length <= 400; t += DAY) days.push(dayOf(new Date(t)));
  return days;
}

/** Rows keyed by day, one per day of the range: days without calls count zero. */
export function fillDays<T extends { key: string | null }>(
  range: DayRange,
  rows: readonly T[],
  zero: (day: string) => T,
): T[] {
  const byDay = new Map(rows.map((r) => [r.key, r]));
  return daysOf(range).map((d) => byDay.get(d) ?? zero(d));
}
