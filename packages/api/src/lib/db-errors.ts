/** Whether a database error (or one it wraps) is a unique-constraint violation (23505). */
export function isUniqueViolation(e: unknown): boolean {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    if ((c as { code?: string }).code === '23505') return true;
  }
  return false;
}
