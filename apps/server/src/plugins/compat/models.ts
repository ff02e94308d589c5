import { loadPolicyRules } from '@smartspace/api';
import type { FastifyInstance } from 'fastify';
import { authenticate } from './auth';
import type { Deps } from './deps';

/**
 * GET /v1/models: the models the key's project may call (the deployment's models, narrowed
 * by the project's allowedModels policy). Anthropic's list shape when the request carries
 * `anthropic-version` (every Anthropic SDK request does), OpenAI's otherwise. The model table
 * has no release dates, so `created`/`created_at` are the Unix epoch.
 */
export function modelRoutes(app: FastifyInstance, deps: Deps): void {
  app.get('/v1/models', async (req) => {
    const who = await authenticate(deps, req, 'viewer');
    const rules = await loadPolicyRules(deps.db, who.projectId);
    const ids = deps.models
      .models()
      .map((m) => m.id)
      .filter((id) => !rules.allowedModels || rules.allowedModels.includes(id));
    if (req.headers['anthropic-version'] !== undefined) {
      return {
        data: ids.map((id) => ({
          type: 'model',
          id,
          display_name: id,
          created_at: new Date(0).toISOString(),
        })),
        has_more: false,
        first_id: ids[0] ?? null,
        last_id: ids.at(-1) ?? null,
      };
    }
    return {
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: ownerOf(deps, id) })),
    };
  });
}

function ownerOf(deps: Deps, id: string): string {
  return deps.models.get(id)?.provider === 'anthropic' ? 'anthropic' : 'smartspace';
}
