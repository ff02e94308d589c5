import type { z } from 'zod';
import { badRequest } from './errors';

/** The body, checked before anything is reserved or called; the first problem, by path. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object') {
    throw badRequest('The request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw badRequest(`${path}${issue?.message ?? 'invalid request body'}`);
}
