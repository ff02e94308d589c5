/**
 * Input rules every procedure shares. PostgreSQL refuses NUL in text and lone surrogates in
 * jsonb, and JavaScript dates past year 9999 serialise as `+010000-…`, which it refuses too:
 * such input is refused here, as bad input naming its field, instead of failing as a 500
 * deep in a service.
 */
import { z } from 'zod';

/** Deeper input than this is refused: no procedure takes it, and parsers recurse. */
export const MAX_INPUT_DEPTH = 64;
/** Enough to name every bad field of a sane input without echoing a hostile one back. */
const MAX_ISSUES = 20;

const MIN_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

/** Years 0001–9999 in UTC: what both PostgreSQL's timestamptz and ISO 8601 text hold. */
export function inInstantRange(date: Date): boolean {
  const t = date.getTime();
  return t >= MIN_INSTANT && t <= MAX_INSTANT;
}

/**
 * The one date input: ISO 8601 with an offset, as a Date. The range is checked after the
 * offset is applied (`9999-12-31T23:59-23:59` is already year 10000 in UTC).
 */
export const instantInput = z.iso
  .datetime({ offset: true })
  .refine((s) => inInstantRange(new Date(s)), {
    message: 'must fall between years 0001 and 9999 (UTC)',
    // Text that is no date at all has its one issue already.
    when: (payload) => payload.issues.length === 0,
  })
  .transform((s) => new Date(s));

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (no lone surrogates)';
  return null;
}

type Path = (string | number)[];
type Visit = (value: unknown, path: Path, depth: number) => void;

/** Hands the keys and children of a container (plain object, array, form) to `visit`. */
function eachChild(value: unknown, path: Path, depth: number, visit: Visit): void {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) visit(item, [...path, i], depth + 1);
    return;
  }
  if (value instanceof FormData) {
    // A file's name is not stored as sent: files/names.ts strips control characters from it.
    for (const [key, entry] of value) {
      visit(key, [...path, key], depth + 1);
      if (typeof entry === 'string') visit(entry, [...path, key], depth + 1);
    }
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return;
  for (const [key, child] of Object.entries(value)) {
    visit(key, [...path, key], depth + 1);
    visit(child, [...path, key], depth + 1);
  }
}

/**
 * Every string (object keys and form fields included) of a raw input that text columns or
 * jsonb cannot store, and nesting past MAX_INPUT_DEPTH, as zod issues. Iterative,
 * so no input is deep enough to overflow the stack here.
 */
export function rawInputIssues(input: unknown): z.core.$ZodIssue[] {
  const issues: z.core.$ZodIssue[] = [];
  const stack: { value: unknown; path: Path; depth: number }[] = [
    { value: input, path: [], depth: 0 },
  ];
  const visit: Visit = (value, path, depth) => stack.push({ value, path, depth });
  for (let next = stack.pop(); next && issues.length < MAX_ISSUES; next = stack.pop()) {
    const { value, path, depth } = next;
    if (typeof value === 'string') {
      const problem = textProblem(value);
      if (problem) issues.push({ code: 'custom', path, message: problem, input: undefined });
    } else if (depth >= MAX_INPUT_DEPTH && value !== null && typeof value === 'object') {
      const message = `must not be nested more than ${MAX_INPUT_DEPTH} levels deep`;
      issues.push({ code: 'custom', path, message, input: undefined });
    } else {
      eachChild(value, path, depth, visit);
    }
  }
  return issues;
}
