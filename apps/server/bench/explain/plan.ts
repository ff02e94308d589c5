/** Reading an `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` plan: what a reviewer looks for. */

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

export interface Explained {
  Plan: PlanNode;
  'Planning Time': number;
  'Execution Time': number;
}

export interface PlanSummary {
  /** The root node and its first children down to the first scan: "Limit > Index Scan using x on t". */
  root: string;
  /** Seq Scans of tables with more than `bigTable` rows. */
  bigSeqScans: string[];
  /** Every scan node, as "Index Scan using x on t". */
  scans: string[];
  /** Rows the scans produced or filtered away (what the query had to look at). */
  rowsRead: number;
  /** Rows the statement answered. */
  rowsReturned: number;
  sharedBlocks: number;
  ms: number;
}

function label(node: PlanNode): string {
  const on = node['Relation Name'] ? ` on ${node['Relation Name']}` : '';
  const using = node['Index Name'] ? ` using ${node['Index Name']}` : '';
  return `${node['Node Type']}${using}${on}`;
}

function path(node: PlanNode): string {
  const steps = [label(node)];
  let n = node;
  while (!n['Relation Name'] && n.Plans?.[0]) {
    n = n.Plans[0];
    steps.push(label(n));
  }
  return steps.join(' > ');
}

function walk(node: PlanNode, visit: (n: PlanNode) => void): void {
  visit(node);
  for (const child of node.Plans ?? []) walk(child, visit);
}

export function summarise(
  explained: Explained,
  tableRows: ReadonlyMap<string, number>,
  bigTable: number,
): PlanSummary {
  const bigSeqScans: string[] = [];
  const scans: string[] = [];
  let rowsRead = 0;
  walk(explained.Plan, (n) => {
    if (!n['Relation Name']) return;
    scans.push(label(n));
    const loops = n['Actual Loops'] ?? 1;
    rowsRead +=
      ((n['Actual Rows'] ?? 0) +
        (n['Rows Removed by Filter'] ?? 0) +
        (n['Rows Removed by Index Recheck'] ?? 0)) *
      loops;
    const rows = tableRows.get(n['Relation Name']) ?? 0;
    if (n['Node Type'] === 'Seq Scan' && rows > bigTable) {
      bigSeqScans.push(`${n['Relation Name']} (${Math.round(rows).toLocaleString('en-US')} rows)`);
    }
  });
  const root = explained.Plan;
  return {
    root: path(root),
    bigSeqScans,
    scans,
    rowsRead,
    rowsReturned: root['Actual Rows'] ?? 0,
    sharedBlocks: (root['Shared Hit Blocks'] ?? 0) + (root['Shared Read Blocks'] ?? 0),
    ms: explained['Execution Time'],
  };
}
