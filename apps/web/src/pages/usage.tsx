import type { RouterOutputs } from '@smartspace/client';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import {
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import { roleAtLeast, useCurrentProject } from '../hooks';
import { useTRPC } from '../trpc';
import { downloadText, toCsv } from '../usage/csv';
import { usdc } from '../usage/money';
import { type DayRange, daysOf, fillDays, lastDays, toInstants } from '../usage/range';
import { ErrorText } from './auth';

type UsageRow = RouterOutputs['usage']['summary'][number];
type Group = 'day' | 'model' | 'agent' | 'member';

const zeroRow = (key: string): UsageRow => ({
  key,
  requests: 0,
  inputTokens: 0,
  outputTokens: 0,
  cacheWriteTokens: 0,
  cacheReadTokens: 0,
  cost: '0',
});

function useSummary(projectId: string, range: DayRange, groupBy: Group, enabled: boolean) {
  const trpc = useTRPC();
  return useQuery({
    ...trpc.usage.summary.queryOptions({ projectId, ...toInstants(range), groupBy }),
    enabled,
  });
}

/** /projects/:projectId/usage: spend and tokens over a range, and the recent calls. */
export function UsagePage() {
  const { projectId, role } = useCurrentProject();
  const trpc = useTRPC();
  const [range, setRange] = useState<DayRange>(() => lastDays(30));
  const valid = daysOf(range).length > 0 && daysOf(range).length <= 366;
  const byDay = useSummary(projectId, range, 'day', valid);
  const byModel = useSummary(projectId, range, 'model', valid);
  const byAgent = useSummary(projectId, range, 'agent', valid);
  const byMember = useSummary(projectId, range, 'member', valid);
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const members = useQuery(trpc.projects.members.list.queryOptions({ projectId }));
  const agentName = (id: string | null) =>
    id === null ? 'no agent (chat)' : (agents.data?.find((a) => a.id === id)?.name ?? id);
  const memberName = (id: string | null) =>
    id === null ? 'API key' : (members.data?.find((m) => m.userId === id)?.name ?? id);

  const days = fillDays(range, byDay.data ?? [], zeroRow).map((r) => ({
    day: r.key,
    cost: Number(r.cost),
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    requests: r.requests,
  }));
  const total = (byDay.data ?? []).reduce(
    (t, r) => ({
      requests: t.requests + r.requests,
      tokens: t.tokens + r.inputTokens + r.outputTokens,
    }),
    { requests: 0, tokens: 0 },
  );

  return (
    <section className="page usage">
      <div className="row">
        <h1>Usage</h1>
        <span className="spacer" />
        <label className="field inline">
          <span>From</span>
          <input
            type="date"
            value={range.from}
            onChange={(e) => setRange((r) => ({ ...r, from: e.target.value }))}
          />
        </label>
        <label className="field inline">
          <span>To</span>
          <input
            type="date"
            value={range.to}
            onChange={(e) => setRange((r) => ({ ...r, to: e.target.value }))}
          />
        </label>
        <button
          type="button"
          className="secondary"
          onClick={() =>
            downloadText(
              `usage-by-day-${range.from}-${range.to}.csv`,
              toCsv(days, ['day', 'requests', 'inputTokens', 'outputTokens', 'cost']),
            )
          }
        >
          Export days as CSV
        </button>
      </div>
      {!valid && (
        <p role="alert" className="error">
          Pick a range of one day to one year, the first day before the last.
        </p>
      )}
      <ErrorText error={byDay.error ?? byModel.error ?? byAgent.error ?? byMember.error} />
      <p>
        {total.requests} calls, {total.tokens} tokens in this range.
      </p>
      <div className="charts">
        <figure aria-label="Cost by day">
          <figcaption>Cost by day (USDC)</figcaption>
          <ResponsiveContainer width="100%" height={220}>
            <BarChart data={days}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="day" fontSize={11} />
              <YAxis fontSize={11} />
              <Tooltip />
              <Bar dataKey="cost" name="cost" fill="#2563eb" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
        <figure aria-label="Tokens by day">
          <figcaption>Tokens by day</figcaption>
          <ResponsiveContainer width="100%" height={220}>
            <LineChart data={days}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="day" fontSize={11} />
              <YAxis fontSize={11} />
              <Tooltip />
              <Legend />
              <Line
                type="monotone"
                dataKey="inputTokens"
                name="input"
                stroke="#2563eb"
                isAnimationActive={false}
              />
              <Line
                type="monotone"
                dataKey="outputTokens"
                name="output"
                stroke="#c2410c"
                isAnimationActive={false}
              />
            </LineChart>
          </ResponsiveContainer>
        </figure>
      </div>
      <div className="breakdowns">
        <Breakdown title="By model" rows={byModel.data} name={(k) => k ?? '—'} />
        <Breakdown title="By agent" rows={byAgent.data} name={agentName} />
        <Breakdown title="By member" rows={byMember.data} name={memberName} />
      </div>
      {roleAtLeast(role, 'admin') && <RecentCalls projectId={projectId} agentName={agentName} />}
    </section>
  );
}

function Breakdown({
  title,
  rows,
  name,
}: {
  title: string;
  rows: UsageRow[] | undefined;
  name: (key: string | null) => string;
}) {
  const max = Math.max(0, ...(rows ?? []).map((r) => Number(r.cost)));
  return (
    <div>
      <h2>{title}</h2>
      <table className="table" aria-label={`Usage ${title.toLowerCase()}`}>
        <thead>
          <tr>
            <th>Name</th>
            <th>Calls</th>
            <th>Tokens in / out</th>
            <th>Cost (USDC)</th>
          </tr>
        </thead>
        <tbody>
          {rows?.map((r) => (
            <tr key={r.key ?? 'none'}>
              <td>{name(r.key)}</td>
              <td>{r.requests}</td>
              <td>
                {r.inputTokens} / {r.outputTokens}
              </td>
              <td>
                <span
                  className="share"
                  style={{ width: `${max > 0 ? (Number(r.cost) / max) * 100 : 0}%` }}
                />
                {usdc(r.cost)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows?.length === 0 && <p className="muted">No calls.</p>}
    </div>
  );
}

type ApiRequest = RouterOutputs['usage']['requests']['items'][number];
const CSV_COLUMNS: (keyof ApiRequest & string)[] = [
  'createdAt',
  'source',
  'model',
  'status',
  'errorCode',
  'userId',
  'agentId',
  'runId',
  'conversationId',
  'inputTokens',
  'outputTokens',
  'cost',
  'latencyMs',
];

function RecentCalls({
  projectId,
  agentName,
}: {
  projectId: string;
  agentName: (id: string | null) => string;
}) {
  const trpc = useTRPC();
  const requests = useInfiniteQuery(
    trpc.usage.requests.infiniteQueryOptions(
      { projectId, limit: 50 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const items = requests.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <div className="row">
        <h2>Recent calls</h2>
        <span className="spacer" />
        <button
          type="button"
          className="secondary"
          disabled={items.length === 0}
          onClick={() => downloadText('usage-calls.csv', toCsv(items, CSV_COLUMNS))}
        >
          Export calls as CSV
        </button>
      </div>
      <ErrorText error={requests.error} />
      <table className="table" aria-label="Recent calls">
        <thead>
          <tr>
            <th>Time</th>
            <th>Source</th>
            <th>Model</th>
            <th>Agent</th>
            <th>Status</th>
            <th>Error code</th>
            <th>Tokens in / out</th>
            <th>Cost (USDC)</th>
            <th>Latency</th>
          </tr>
        </thead>
        <tbody>
          {items.map((r) => (
            <tr key={r.id} data-status={r.status}>
              <td>{new Date(r.createdAt).toLocaleString()}</td>
              <td>{r.source}</td>
              <td>{r.model}</td>
              <td>{r.agentId ? agentName(r.agentId) : '—'}</td>
              <td>{r.status}</td>
              <td>{r.errorCode ?? ''}</td>
              <td>
                {r.inputTokens} / {r.outputTokens}
              </td>
              <td>{r.cost}</td>
              <td>{r.latencyMs === null ? '' : `${r.latencyMs} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {requests.data && items.length === 0 && <p className="muted">No calls yet.</p>}
      {requests.hasNextPage && (
        <button type="button" className="link" onClick={() => void requests.fetchNextPage()}>
          Load more calls
        </button>
      )}
    </>
  );
}
