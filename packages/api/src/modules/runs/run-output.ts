import type { AgentRow } from '../agents/agents.service';
import { compileSchema, validationErrors } from '../agents/schema';

/** Pulls the JSON document out of a final answer ("```json ... ```" fences allowed). */
export function parseJsonAnswer(text: string): { ok: true; value: unknown } | { ok: false } {
  // No \s* before the lazy group: the two overlap, which made an unclosed fence followed by
  // a long run of spaces quadratic (the trim below drops the same whitespace).
  const fenced = /```(?:json)?([\s\S]*?)```/.exec(text);
  const candidate = (fenced?.[1] ?? text).trim();
  try {
    return { ok: true, value: JSON.parse(candidate) };
  } catch {
    return { ok: false };
  }
}

/**
 * A run's output from the agent's final answer: the text itself, or with an output schema
 * the JSON document in it, which must match the schema.
 */
export function finalOutput(
  agent: AgentRow,
  text: string,
): { ok: true; output: unknown } | { ok: false; problem: string } {
  if (!agent.outputSchema) return { ok: true, output: text };
  const validate = compileSchema(agent.outputSchema);
  const parsed = parseJsonAnswer(text);
  if (!parsed.ok) return { ok: false, problem: 'the answer is not valid JSON' };
  if (!validate(parsed.value)) return { ok: false, problem: validationErrors(validate) };
  return { ok: true, output: parsed.value };
}
