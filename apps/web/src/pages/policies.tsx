import type { RouterOutputs } from '@smartspace/client';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { usdc } from '../usage/money';
import { ErrorText } from './auth';

type Policy = RouterOutputs['policies']['get'];

interface Draft {
  /** null: any model. */
  allowedModels: string[] | null;
  maxOutputTokens: string;
  maxCostPerRequest: string;
  requestsPerMinute: string;
  tokensPerMinute: string;
  approvalCostThreshold: string;
}

const text = (v: number | string | null) => (v === null ? '' : String(v));

function draftOf(p: Policy): Draft {
  return {
    allowedModels: p.allowedModels,
    maxOutputTokens: text(p.maxOutputTokens),
    maxCostPerRequest: p.maxCostPerRequest === null ? '' : usdc(p.maxCostPerRequest),
    requestsPerMinute: text(p.requestsPerMinute),
    tokensPerMinute: text(p.tokensPerMinute),
    approvalCostThreshold: p.approvalCostThreshold === null ? '' : usdc(p.approvalCostThreshold),
  };
}

/** Blank removes the rule; anything else goes to the server as typed, for it to judge. */
const intOrNull = (s: string) => (s.trim() === '' ? null : Number(s));
const amountOrNull = (s: string) => (s.trim() === '' ? null : s.trim());

/** /projects/:projectId/policies: the rules the gateway applies before every model call. */
export function PoliciesPage() {
  const { projectId } = useCurrentProject();
  const trpc = useTRPC();
  const policy = useQuery(trpc.policies.get.queryOptions({ projectId }));
  if (!policy.data) {
    return (
      <section className="page">
        {policy.error ? <ErrorText error={policy.error} /> : 'Loading…'}
      </section>
    );
  }
  return <PolicyForm key={projectId} policy={policy.data} />;
}

function PolicyForm({ policy }: { policy: Policy }) {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const models = useQuery(trpc.models.list.queryOptions());
  const [draft, setDraft] = useState(() => draftOf(policy));
  const [saved, setSaved] = useState(false);
  const canEdit = roleAtLeast(role, 'admin');
  const update = useMutation(
    trpc.policies.update.mutationOptions({
      onSuccess: async () => {
        setSaved(true);
        await queryClient.invalidateQueries({
          queryKey: trpc.policies.get.queryKey({ projectId }),
        });
      },
    }),
  );
  const set = (patch: Partial<Draft>) => {
    setSaved(false);
    setDraft((d) => ({ ...d, ...patch }));
  };
  // Models the policy names that this server no longer offers stay listed, to be unticked.
  const modelIds = [
    ...new Set([...(models.data?.map((m) => m.id) ?? []), ...(draft.allowedModels ?? [])]),
  ];
  const numberField = (
    key:
      | 'maxOutputTokens'
      | 'requestsPerMinute'
      | 'tokensPerMinute'
      | 'maxCostPerRequest'
      | 'approvalCostThreshold',
    label: string,
    hint: string,
  ) => (
    <label className="field">
      <span>{label}</span>
      <input
        {...(key === 'maxCostPerRequest' || key === 'approvalCostThreshold'
          ? { inputMode: 'decimal' as const }
          : { type: 'number' })}
        placeholder="no limit"
        value={draft[key]}
        onChange={(e) => set({ [key]: e.target.value })}
      />
      <small className="muted">{hint}</small>
    </label>
  );

  return (
    <section className="page narrow policies">
      <h1>Policy</h1>
      <p className="muted">
        Checked before every model call of the project (chat, runs and API keys).
        {policy.updatedAt && ` Last changed ${new Date(policy.updatedAt).toLocaleString()}.`}
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          update.mutate({
            projectId,
            allowedModels: draft.allowedModels,
            maxOutputTokens: intOrNull(draft.maxOutputTokens),
            maxCostPerRequest: amountOrNull(draft.maxCostPerRequest),
            requestsPerMinute: intOrNull(draft.requestsPerMinute),
            tokensPerMinute: intOrNull(draft.tokensPerMinute),
            approvalCostThreshold: amountOrNull(draft.approvalCostThreshold),
          });
        }}
      >
        <fieldset disabled={!canEdit} className="column">
          <fieldset className="picks">
            <legend>Allowed models</legend>
            <label className="check">
              <input
                type="checkbox"
                checked={draft.allowedModels === null}
                onChange={(e) => set({ allowedModels: e.target.checked ? null : [] })}
              />
              <span>Any model</span>
            </label>
            {draft.allowedModels !== null &&
              modelIds.map((id) => (
                <label key={id} className="check">
                  <input
                    type="checkbox"
                    checked={draft.allowedModels?.includes(id) ?? false}
                    onChange={(e) => {
                      const list = (draft.allowedModels ?? []).filter((m) => m !== id);
                      set({ allowedModels: e.target.checked ? [...list, id] : list });
                    }}
                  />
                  <span>{id}</span>
                </label>
              ))}
          </fieldset>
          {numberField(
            'maxOutputTokens',
            'Max output tokens per call',
            'Longer replies are cut off.',
          )}
          {numberField(
            'maxCostPerRequest',
            'Max cost per request (USDC)',
            'Calls whose worst case costs more are refused.',
          )}
          {numberField(
            'approvalCostThreshold',
            'Approval above (USDC)',
            "An agent run's model step that could cost more waits for an approver first.",
          )}
          {numberField('requestsPerMinute', 'Requests per minute', 'For the whole project.')}
          {numberField(
            'tokensPerMinute',
            'Tokens per minute',
            'Input and output, for the whole project.',
          )}
          <ErrorText error={update.error} />
          {canEdit && (
            <div className="row">
              <button type="submit" disabled={update.isPending}>
                Save policy
              </button>
              {saved && <span className="muted">Saved.</span>}
            </div>
          )}
        </fieldset>
      </form>
    </section>
  );
}
