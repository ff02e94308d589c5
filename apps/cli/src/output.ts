import Table from 'cli-table3';
import pc from 'picocolors';

/** Global flags every command honours. */
export interface GlobalOptions {
  json?: boolean;
  debug?: boolean;
  url?: string;
  project?: string;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export type Cell = string | number | boolean | null | undefined;

export function printTable(head: string[], rows: Cell[][]): void {
  if (rows.length === 0) {
    process.stdout.write(`${pc.dim('(none)')}\n`);
    return;
  }
  const table = new Table({ head: head.map((h) => pc.bold(h)), style: { head: [], border: [] } });
  for (const row of rows)
    table.push(row.map((c) => (c === null || c === undefined ? '' : String(c))));
  process.stdout.write(`${table.toString()}\n`);
}

/** Key/value pairs, one per line, for a single record. */
export function printRecord(fields: Record<string, Cell>): void {
  const width = Math.max(...Object.keys(fields).map((k) => k.length));
  for (const [k, v] of Object.entries(fields)) {
    process.stdout.write(`${pc.dim(k.padEnd(width))}  ${v ?? ''}\n`);
  }
}

function csvCell(c: Cell): string {
  const s = c === null || c === undefined ? '' : String(c);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function toCsv(head: string[], rows: Cell[][]): string {
  return `${[head, ...rows].map((r) => r.map(csvCell).join(',')).join('\n')}\n`;
}

/** Human notes go to stderr so stdout stays clean for the data (and pipes). */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function success(text: string): void {
  process.stderr.write(`${pc.green('✔')} ${text}\n`);
}

export function shortDate(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').slice(0, 19) : '';
}
