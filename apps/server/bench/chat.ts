/**
 * The chat suite of `pnpm bench`: what a chat reply costs beyond its model call. chat.send
 * stores the question and the reply row and publishes message.created and reply.started (one
 * transaction; the conversation's history is read under its lock in the same round trip),
 * then starts the reply, which goes through the gateway (policy, reservation, settlement),
 * and stores the finished reply with its last deltas and reply.completed (one transaction).
 * Timed from the send to reply.completed reaching a topic listener, against the same prompt
 * sent to the provider directly (mock-echo without pauses), in one child (chat-worker.ts).
 *
 * BENCH_CHAT_SENDS (default 200) sequential sends, each in a new conversation.
 */
import { cpus, loadavg } from 'node:os';
import { record } from './goals';
import { markdownTable } from './report';
import { startChild, stopChild } from './shared';

export interface ChatReport {
  type: 'report';
  database: string;
  sends: number;
  directMeanMs: number;
  directP50Ms: number;
  replyMeanMs: number;
  replyP50Ms: number;
  replyP99Ms: number;
  /** chat.send's own time (the question and reply rows stored, the reply started). */
  sendP50Ms: number;
  failed: number;
  firstError: string | null;
}

export interface ChatFigures {
  /** p50 send → reply.completed, minus the model's own p50. */
  overheadMs: number;
}

const ms = (x: number) => (x < 1 ? x.toFixed(3) : x.toFixed(2));

/** Runs the chat suite and prints its report; null when a reply failed. */
export async function runChat(): Promise<ChatFigures | null> {
  const loadBefore = loadavg()[0] ?? 0;
  console.log('\nChat: starting the bench child (sequential sends, then the report)…');
  const { child, ready: r } = await startChild<ChatReport>('./chat-worker.ts');
  await stopChild(child);
  const overheadMs = r.replyP50Ms - r.directP50Ms;
  if (r.failed === 0) record('chat.overhead', overheadMs);
  const cpu = cpus();
  console.log(`
## SmartSpace chat bench

node ${process.version} · ${cpu.length} CPU · load average before start ${loadBefore.toFixed(2)}
database: ${r.database}
${r.sends} sequential sends, each in a new conversation; mock-echo without pauses

${markdownTable(
  ['path', 'p50 ms', 'mean ms', 'p99 ms'],
  [false, true, true, true],
  [
    ['provider direct (the same prompt)', ms(r.directP50Ms), ms(r.directMeanMs), '—'],
    ['chat.send alone (rows stored, reply started)', ms(r.sendP50Ms), '—', '—'],
    [
      'chat.send → reply.completed at a topic listener',
      ms(r.replyP50Ms),
      ms(r.replyMeanMs),
      ms(r.replyP99Ms),
    ],
  ],
)}

- reply overhead beyond the model: ${ms(overheadMs)} ms at p50 (goal ≤ 5 ms): the send transaction (question, reply row, message.created and reply.started), the gateway's admission (against its budget lease) and settlement statement, and the finishing transaction (the reply's row, its last deltas and reply.completed, each event a stored row and a NOTIFY). The listener here is in the process that published, so it is handed the events without reading their rows; another instance reads them once per transaction's events.${
    loadBefore > cpu.length
      ? `\n- WARNING: load average ${loadBefore.toFixed(2)} on ${cpu.length} CPUs before the start: rerun on a quiet machine.`
      : ''
  }`);
  if (r.failed > 0) {
    console.error(`FAILED: ${r.failed} replies failed, first: ${r.firstError}`);
    return null;
  }
  return { overheadMs };
}
