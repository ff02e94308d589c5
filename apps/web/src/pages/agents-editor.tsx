import type { RouterOutputs } from '@smartspace/client';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { parseSchemaText, schemaToText } from '../agents/schema';
import { appCodeOf } from '../errors';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { ErrorText } from './auth';
import { StartRunForm } from './runs';

type Agent = RouterOutputs['agents']['get'];

interface Draft {
  name: string;
  description: string;
  instructions: string;
  model: string;
  tools: string[];
  /** Of `tools`, those whose every call waits for a person's approval. */
  requiresApproval: string[];
  handoffs: string[];
  schemaText: string;
  maxSteps: number;
  status: 'active' | 'inactive';
}

function draftOf(a: Agent | undefined, defaultModel: string): Draft {
  return {
    name: a?.name ?? '',
    description: a?.description ?? '',
    instructions: a?.instructions ?? '',
    model: a?.model ?? defaultModel,
    tools: a?.tools ?? [],
    requiresApproval: a?.requiresApproval ?? [],
    handoffs: a?.handoffs ?? [],
    schemaText: schemaToText(a?.outputSchema ?? null),
    maxSteps: a?.maxSteps ?? 10,
    status: a?.status ?? 'active',
  };
}

const toggle = (list: string[], item: string, on: boolean) =>
  on ? [...list.filter((x) => x !== item), item] : list.filter((x) => x !== item);

/** /projects/:projectId/agents/new and /projects/:projectId/agents/:agentId */
export function AgentEditorPage() {
  const { agentId } = useParams();
  const trpc = useTRPC();
  const agent = useQuery({
    ...trpc.agents.get.queryOptions({ agentId: agentId ?? '' }),
    enabled: !!agentId,
  });
  const models = useQuery(trpc.models.list.queryOptions());
  if ((agentId && !agent.data && !agent.error) || !models.data) {
    return <section className="page">Loading…</section>;
  }
  if (agent.error) {
    return (
      <section className="page">
        <ErrorText error={agent.error} />
      </section>
    );
  }
  const defaultModel = models.data.find((m) => m.default)?.id ?? models.data[0]?.id ?? '';
  // Keyed: another agent starts from its own stored fields.
  return (
    <AgentForm
      key={agent.data?.id ?? 'new'}
      agent={agent.data}
      initial={draftOf(agent.data, defaultModel)}
    />
  );
}

function AgentForm({ agent, initial }: { agent: Agent | undefined; initial: Draft }) {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const models = useQuery(trpc.models.list.queryOptions());
  // Built-in tools and the MCP tools of the project's servers.
  const tools = useQuery(trpc.agents.tools.queryOptions({ projectId }));
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const [draft, setDraft] = useState(initial);
  const [saved, setSaved] = useState(false);
  const canEdit = roleAtLeast(role, 'admin');
  const set = (patch: Partial<Draft>) => {
    setSaved(false);
    setDraft((d) => ({ ...d, ...patch }));
  };
  const schema = parseSchemaText(draft.schemaText);

  const afterSave = async (a: Agent) => {
    await queryClient.invalidateQueries({ queryKey: trpc.agents.pathKey() });
    setSaved(true);
    if (!agent) navigate(`/projects/${projectId}/agents/${a.id}`, { replace: true });
  };
  const create = useMutation(trpc.agents.create.mutationOptions({ onSuccess: afterSave }));
  const update = useMutation(trpc.agents.update.mutationOptions({ onSuccess: afterSave }));
  const remove = useMutation(
    trpc.agents.delete.mutationOptions({
      onSuccess: async () => {
        await queryClient.invalidateQueries({ queryKey: trpc.agents.pathKey() });
        navigate(`/projects/${projectId}/agents`);
      },
    }),
  );
  const saveError = agent ? update.error : create.error;
  // The server's word on the schema goes under the schema box; anything else above Save.
  const schemaServerError =
    appCodeOf(saveError) === 'agents.invalid' && /outputSchema/.test(saveError?.message ?? '')
      ? saveError?.message
      : null;

  const submit = () => {
    if (!schema.ok) return;
    const fields = {
      name: draft.name,
      description: draft.description.trim() || null,
      instructions: draft.instructions,
      model: draft.model,
      tools: draft.tools,
      // Only tools the agent keeps can require approval.
      requiresApproval: draft.requiresApproval.filter((t) => draft.tools.includes(t)),
      handoffs: draft.handoffs,
      outputSchema: schema.schema,
      maxSteps: draft.maxSteps,
      status: draft.status,
    };
    if (agent) update.mutate({ agentId: agent.id, ...fields });
    else create.mutate({ projectId, ...fields });
  };
  const others = agents.data?.filter((a) => a.id !== agent?.id) ?? [];

  return (
    <section className="page agent-editor">
      <p>
        <Link to={`/projects/${projectId}/agents`}>← Agents</Link>
      </p>
      <h1>{agent ? agent.name : 'New agent'}</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <fieldset disabled={!canEdit} className="column">
          <label className="field">
            <span>Name</span>
            <input
              required
              maxLength={100}
              value={draft.name}
              onChange={(e) => set({ name: e.target.value })}
            />
          </label>
          <label className="field">
            <span>Description</span>
            <input
              maxLength={2000}
              value={draft.description}
              onChange={(e) => set({ description: e.target.value })}
            />
          </label>
          <label className="field">
            <span>Instructions</span>
            <textarea
              required
              rows={5}
              value={draft.instructions}
              onChange={(e) => set({ instructions: e.target.value })}
            />
          </label>
          <div className="row">
            <label className="field inline">
              <span>Model</span>
              <select value={draft.model} onChange={(e) => set({ model: e.target.value })}>
                {models.data?.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id} (${m.inputPricePerMTok} / ${m.outputPricePerMTok} per M tokens)
                  </option>
                ))}
              </select>
            </label>
            <label className="field inline">
              <span>Max steps</span>
              <input
                type="number"
                min={1}
                max={100}
                required
                value={draft.maxSteps}
                onChange={(e) => set({ maxSteps: Number(e.target.value) })}
              />
            </label>
            <label className="field inline">
              <span>Status</span>
              <select
                value={draft.status}
                onChange={(e) => set({ status: e.target.value as Draft['status'] })}
              >
                <option value="active">active</option>
                <option value="inactive">inactive</option>
              </select>
            </label>
          </div>
          <fieldset className="picks">
            <legend>Tools</legend>
            {tools.data?.map((t) => (
              <label key={t.name} className="check">
                <input
                  type="checkbox"
                  checked={draft.tools.includes(t.name)}
                  onChange={(e) => set({ tools: toggle(draft.tools, t.name, e.target.checked) })}
                />
                <span>
                  <strong>{t.name}</strong> <span className="muted">{t.description}</span>
                </span>
                {draft.tools.includes(t.name) && (
                  <label className="check approval-pick">
                    <input
                      type="checkbox"
                      aria-label={`${t.name} needs approval`}
                      checked={draft.requiresApproval.includes(t.name)}
                      onChange={(e) =>
                        set({
                          requiresApproval: toggle(
                            draft.requiresApproval,
                            t.name,
                            e.target.checked,
                          ),
                        })
                      }
                    />
                    <span>needs approval</span>
                  </label>
                )}
              </label>
            ))}
          </fieldset>
          <fieldset className="picks">
            <legend>Hands off to</legend>
            {others.length === 0 && <p className="muted">No other agents in this project.</p>}
            {others.map((a) => (
              <label key={a.id} className="check">
                <input
                  type="checkbox"
                  checked={draft.handoffs.includes(a.id)}
                  onChange={(e) =>
                    set({ handoffs: toggle(draft.handoffs, a.id, e.target.checked) })
                  }
                />
                <span>{a.name}</span>
              </label>
            ))}
          </fieldset>
          <label className="field">
            <span>Output JSON Schema (blank: the answer is text)</span>
            <textarea
              className="code"
              rows={8}
              spellCheck={false}
              aria-invalid={!schema.ok || !!schemaServerError}
              aria-describedby="schema-error"
              placeholder='{"type": "object", "properties": {"answer": {"type": "number"}}}'
              value={draft.schemaText}
              onChange={(e) => set({ schemaText: e.target.value })}
            />
          </label>
          <p id="schema-error" role="alert" className="error">
            {!schema.ok ? schema.error : schemaServerError}
          </p>
          {!schemaServerError && <ErrorText error={saveError} />}
          {canEdit && (
            <div className="row">
              <button type="submit" disabled={!schema.ok || create.isPending || update.isPending}>
                {agent ? 'Save agent' : 'Create agent'}
              </button>
              {saved && <span className="muted">Saved.</span>}
            </div>
          )}
        </fieldset>
      </form>
      {agent && canEdit && (
        <p>
          <ErrorText error={remove.error} />
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (window.confirm(`Delete agent "${agent.name}"?`)) {
                remove.mutate({ agentId: agent.id });
              }
            }}
          >
            Delete agent
          </button>
        </p>
      )}
      {agent && roleAtLeast(role, 'member') && (
        <>
          <h2>Start a run</h2>
          <StartRunForm agents={[agent]} />
        </>
      )}
    </section>
  );
}
