import type { Result } from 'autocannon';

export interface Row {
  name: string;
  /** Database round trips per HTTP request. */
  queries: string;
  connections: string;
  result: Result;
  /** Compare req/s with the raw baseline (not for fixed-rate probes). */
  ratio: boolean;
}

export function failures(r: Result): number {
  return r.non2xx + r.errors + r.timeouts;
}

function failureText(r: Result): string {
  if (failures(r) === 0) return '0';
  const codes = Object.entries(r.statusCodeStats)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, s]) => `${s.count}×${code}`);
  const parts = [
    ...codes,
    r.errors ? `${r.errors} err` : '',
    r.timeouts ? `${r.timeouts} t/o` : '',
  ];
  return parts.filter(Boolean).join(' ');
}

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function summary(r: Result): string {
  return `${number.format(r.requests.average)} req/s, p99 ${r.latency.p99} ms, failures ${failureText(r)}`;
}

/** A Markdown table, columns padded; `right` marks the right-aligned (numeric) columns. */
export function markdownTable(header: string[], right: boolean[], body: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((cells) => cells[i]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (right[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (right[i] ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** The HTTP suite's table: one row per case. */
export function table(rows: Row[], baseline: number): string {
  const header = ['case', 'DB queries', 'conns', 'req/s', 'p99 ms', 'vs raw', 'non-2xx/errors'];
  const right = [false, true, true, true, true, true, true];
  const body = rows.map((row) => [
    row.name,
    row.queries,
    row.connections,
    number.format(row.result.requests.average),
    String(row.result.latency.p99),
    row.ratio ? (row.result.requests.average / baseline).toFixed(2) : '—',
    failureText(row.result),
  ]);
  return markdownTable(header, right, body);
}
