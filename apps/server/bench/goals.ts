/**
 * The performance goals `pnpm bench` is held to, in one table printed at the end of a run:
 * each suite records its headline figures here, and the table shows every goal in a fixed
 * order with the figure measured in this run beside it and whether it is met, so that a
 * regression is visible at a glance. Goals whose suite did not run say so.
 */
import { markdownTable } from './report';

interface Goal {
  key: string;
  label: string;
  suite: string;
  goal: string;
  met: (value: number) => boolean;
  format: (value: number) => string;
}

const times = (v: number) => `${v.toFixed(2)}×`;
const millis = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
const perSecond = (v: number) => `${Math.round(v).toLocaleString('en-US')} calls/s`;
const kib = (v: number) => `${v.toFixed(1)} KiB`;
const seconds = (v: number) => `${v.toFixed(2)} s`;

export const GOALS: readonly Goal[] = [
  {
    key: 'http.projectsGet',
    label: '`projects.get` (session + membership + project) vs raw Fastify + driver PK read',
    suite: 'http',
    goal: '≥ 0.60×',
    met: (v) => v >= 0.6,
    format: times,
  },
  {
    key: 'http.usersMe',
    label: '`users.me` vs the same driver read',
    suite: 'http',
    goal: '≥ 0.85×',
    met: (v) => v >= 0.85,
    format: times,
  },
  {
    key: 'fanout.p99',
    label: 'fan-out, 5,000 subscribers: p99 delivery vs raw `ws` broadcast',
    suite: 'fanout',
    goal: '≤ 2×',
    met: (v) => v <= 2,
    format: times,
  },
  {
    key: 'fanout.cpu',
    label: 'fan-out: server CPU per delivery vs raw',
    suite: 'fanout',
    goal: '≤ 2×',
    met: (v) => v <= 2,
    format: times,
  },
  {
    key: 'fanout.memory',
    label: 'memory per idle subscribed socket (RSS)',
    suite: 'fanout',
    goal: '≤ 12 KiB',
    met: (v) => v <= 12,
    format: kib,
  },
  {
    key: 'gateway.added',
    label: 'gateway, limit + prepaid balance, 1 in flight: added per call',
    suite: 'gateway',
    goal: '≤ 2 ms',
    met: (v) => v <= 2,
    format: millis,
  },
  {
    key: 'gateway.hot',
    label: 'gateway, ONE hot project, 50 in flight (zero overspend checked)',
    suite: 'gateway',
    goal: '≥ 2,000 calls/s',
    met: (v) => v >= 2000,
    format: perSecond,
  },
  {
    key: 'runs.overhead',
    label: 'agent orchestration overhead per step',
    suite: 'runs',
    goal: '≤ 3 ms',
    met: (v) => v <= 3,
    format: millis,
  },
  {
    key: 'chat.overhead',
    label: 'chat reply overhead beyond the model (send → completed, p50)',
    suite: 'chat',
    goal: '≤ 5 ms',
    met: (v) => v <= 5,
    format: millis,
  },
  {
    key: 'compat.firstToken',
    label: '`POST /v1/messages` streamed: added to the first token (p50, 1 in flight)',
    suite: 'compat',
    goal: '≤ 2 ms',
    met: (v) => v <= 2,
    format: millis,
  },
  {
    key: 'start.health',
    label: 'production start → `/health` 200 (built, PostgreSQL, median)',
    suite: 'start',
    goal: '≤ 2 s',
    met: (v) => v <= 2,
    format: seconds,
  },
];

const figures = new Map<string, number>();

/** A suite's headline figure for the goals table (the key of one of GOALS). */
export function record(key: string, value: number): void {
  if (!GOALS.some((g) => g.key === key)) throw new Error(`no goal named ${key}`);
  if (Number.isFinite(value)) figures.set(key, value);
}

/** The goals table for this run; null when no suite recorded anything. */
export function goalsReport(): string | null {
  if (figures.size === 0) return null;
  const rows = GOALS.map((g) => {
    const value = figures.get(g.key);
    if (value === undefined) return [g.label, g.goal, '—', `not run (\`${g.suite}\`)`];
    return [g.label, g.goal, g.format(value), g.met(value) ? 'met' : '**NOT met**'];
  });
  const met = GOALS.filter((g) => {
    const v = figures.get(g.key);
    return v !== undefined && g.met(v);
  }).length;
  return `## Goals

${markdownTable(['path', 'goal', 'this run', 'verdict'], [false, true, true, false], rows)}

${met} of ${figures.size} measured goals met. Figures from a loaded machine are inflated: check each suite's load warning.`;
}
