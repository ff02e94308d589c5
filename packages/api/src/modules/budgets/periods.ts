export type Period = 'day' | 'week' | 'month' | 'total';

/**
 * Start of the calendar period (UTC) containing `at`; weeks start on Monday (ISO 8601).
 * 'total' never resets: it uses the epoch.
 */
export function periodStart(period: Period, at: Date): Date {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  const d = at.getUTCDate();
  switch (period) {
    case 'day':
      return new Date(Date.UTC(y, m, d));
    case 'week': {
      const mondayOffset = (at.getUTCDay() + 6) % 7;
      return new Date(Date.UTC(y, m, d - mondayOffset));
    }
    case 'month':
      return new Date(Date.UTC(y, m, 1));
    case 'total':
      return new Date(0);
  }
}
