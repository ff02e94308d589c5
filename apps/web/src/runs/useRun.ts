import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useReducer, useRef, useState } from 'react';
import { appCodeOf, errorMessage } from '../errors';
import { client, endSession, useTRPC } from '../trpc';
import {
  applyRunEvent,
  clearTimeline,
  emptyTimeline,
  isFinished,
  loadTimeline,
  type RunEventData,
  saveTimeline,
  type Timeline,
  timelineFromRun,
  withDurations,
} from './timeline';

type Action =
  | { type: 'reset'; state: Timeline | null }
  | { type: 'event'; id: string; event: RunEventData };

function reducer(state: Timeline | null, action: Action): Timeline | null {
  if (action.type === 'reset') return action.state;
  return state ? applyRunEvent(state, action.id, action.event) : state;
}

/** Events after which a round is stored: the stored steps (with durations) are worth a look. */
const STORED_WITH = new Set([
  'usage',
  'tool.result',
  'handoff',
  'run.completed',
  'run.failed',
  'run.cancelled',
]);

function isUnauthorized(err: unknown): boolean {
  return (err as { data?: { code?: string } } | null)?.data?.code === 'UNAUTHORIZED';
}

/**
 * A run as the console shows it. A run still going is followed on runs.onProgress from the
 * start of its events ("0"), or after the last event this tab applied before a reload; a
 * finished run is read once from runs.get. Whether to follow is decided once per run, so a
 * refetch that already sees the run finished does not cut off its last events.
 */
export function useRun(runId: string) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const runQuery = useQuery(trpc.runs.get.queryOptions({ runId }));
  const run = runQuery.data;
  const [live, dispatch] = useReducer(reducer, null);
  const [error, setError] = useState<string | null>(null);
  const [follow, setFollow] = useState<{ runId: string; live: boolean } | null>(null);
  // After events expired: the stored steps, then live events only.
  const [liveOnlyFor, setLiveOnlyFor] = useState<string | null>(null);
  const liveOnly = liveOnlyFor === runId;
  const runRef = useRef(run);
  runRef.current = run;

  useEffect(() => {
    if (run && run.id === runId && follow?.runId !== runId) {
      setFollow({ runId, live: !isFinished(run.status) });
    }
  }, [run, runId, follow]);

  const following = follow?.runId === runId && follow.live;
  useEffect(() => {
    if (!following) {
      dispatch({ type: 'reset', state: null });
      return;
    }
    const current = runRef.current;
    const saved = liveOnly ? null : loadTimeline(runId);
    const start: Timeline =
      saved ??
      (liveOnly && current
        ? timelineFromRun(current)
        : { ...emptyTimeline, activeAgentId: current?.activeAgentId ?? null });
    dispatch({ type: 'reset', state: start });
    setError(null);
    const refresh = () =>
      queryClient.invalidateQueries({ queryKey: trpc.runs.get.queryKey({ runId }) });
    const subscription = client.runs.onProgress.subscribe(
      { runId, lastEventId: liveOnly ? null : (saved?.lastEventId ?? '0') },
      {
        onData: ({ id, data }: { id: string; data: RunEventData }) => {
          dispatch({ type: 'event', id, event: data });
          if (STORED_WITH.has(data.type)) void refresh();
        },
        onError: (err: unknown) => {
          if (appCodeOf(err) === 'events.expired' && !liveOnly) {
            clearTimeline(runId);
            void refresh().then(() => setLiveOnlyFor(runId));
          } else if (isUnauthorized(err)) {
            endSession();
          } else {
            setError(errorMessage(err));
          }
        },
      },
    );
    return () => subscription.unsubscribe();
  }, [following, runId, liveOnly, queryClient, trpc]);

  useEffect(() => {
    if (!live) return;
    if (isFinished(live.status)) clearTimeline(runId);
    else saveTimeline(runId, live);
  }, [live, runId]);

  const timeline: Timeline | null = live
    ? { ...live, entries: withDurations(live.entries, run?.steps ?? []) }
    : run && follow?.runId === runId && !follow.live
      ? timelineFromRun(run)
      : null;
  return { run, timeline, error: error ?? (runQuery.error ? errorMessage(runQuery.error) : null) };
}
