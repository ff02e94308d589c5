import { UsageError } from './errors';

/** `2026-11-01` (midnight UTC) or any ISO 8601 instant, as the API's ISO form. */
export function parseInstant(text: string, flag: string): string {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  const d = new Date(dateOnly ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError(`${flag} takes a date (YYYY-MM-DD) or an ISO 8601 time, not "${text}"`);
  }
  return d.toISOString();
}
