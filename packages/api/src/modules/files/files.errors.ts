import type { ErrorTable } from '../../lib/error-table';

/** Uploads and their extraction. */
export const filesErrors = {
  'files.not_found': { transport: 'NOT_FOUND' },
  'files.too_large': { transport: 'PAYLOAD_TOO_LARGE' },
  'files.empty': { transport: 'BAD_REQUEST' },
  'files.invalid': { transport: 'BAD_REQUEST' },
} as const satisfies ErrorTable<`files.${string}`>;
