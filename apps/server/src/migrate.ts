import { loadConfig, openDatabase } from '@smartspace/api';

// `pnpm db:migrate`: apply committed migrations to DATABASE_URL (or the embedded database).
const config = loadConfig();
const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
try {
  await db.migrate();
  console.log(`migrations applied (${db.kind}); pending: ${await db.pendingMigrations()}`);
} finally {
  await db.close();
}
