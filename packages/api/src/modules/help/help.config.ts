import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseUsdc } from '../../lib/money';
import { int, setting } from '../../lib/settings';

/**
 * The README shipped at the repository root, found from this file rather than the working
 * directory, so the server finds it wherever it is started from.
 */
export const defaultDocsPath = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../../../../README.md',
);

/** "0" turns help off; otherwise a USDC amount with at most 6 decimals. */
const budget = z
  .string()
  .trim()
  .regex(/^\d{1,12}(?:\.\d{1,6})?$/, 'a decimal USDC amount with at most 6 fractional digits')
  .transform(parseUsdc);

export const helpConfig = {
  help: {
    docsPath: setting({
      env: 'PLATFORM_DOCS_PATH',
      schema: z
        .string()
        .min(1)
        .optional()
        .transform((v) => v ?? defaultDocsPath),
      doc: 'markdown file, or folder of .md files, that the in-app help answers from',
    }),
    budgetPerDay: setting({
      env: 'HELP_BUDGET_PER_DAY',
      schema: budget,
      default: '5',
      doc: 'USDC the in-app help may spend per UTC day across all users; `0` turns help off',
    }),
    messagesPerHour: setting({
      env: 'HELP_MESSAGES_PER_HOUR',
      schema: int(0, 100_000),
      default: '30',
      doc: 'help questions one user may send per hour; `0` = no limit',
    }),
  },
};
