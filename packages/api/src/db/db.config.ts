import { z } from 'zod';
import { bool, int, setting } from '../lib/settings';

export const databaseConfig = {
  databaseUrl: setting({
    env: 'DATABASE_URL',
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
    doc: 'unset: the embedded PGlite database under DATA_DIR',
  }),
  databasePoolSize: setting({
    env: 'DATABASE_POOL_SIZE',
    schema: int(1, 500),
    default: '10',
    doc: 'PostgreSQL connections per process',
  }),
  databaseConnectTimeoutMs: setting({
    env: 'DATABASE_CONNECT_TIMEOUT_MS',
    schema: int(100, 600_000),
    default: '5000',
    doc: 'opening a connection (TCP, TLS, sign-in) may take this long; also the longest wait for a free pool connection',
  }),
  databaseStatementTimeoutMs: setting({
    env: 'DATABASE_STATEMENT_TIMEOUT_MS',
    schema: int(100, 3_600_000),
    default: '15000',
    doc: 'statement_timeout of pool connections; a query without an answer within the connect timeout + this + 0.5 s is given up client-side',
  }),
  databasePreparedStatements: setting({
    env: 'DATABASE_PREPARED_STATEMENTS',
    schema: bool,
    default: 'true',
    doc: 'statements with parameters are prepared once per connection and then sent in one round trip (unprepared, the driver asks the server for the parameter types first: two); false behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21)',
  }),
};
