import { latestOutboxMail, loadConfig, openDatabase } from '@smartspace/api';

// `pnpm mail:outbox [count] [email]`: print the newest mail kept in the mail_outbox table
// (SMTP_URL unset), oldest of them first. The embedded database allows one process: stop
// the server first. With DATABASE_URL it may keep running.
const [countArg = '5', to] = process.argv.slice(2);
const limit = Number.parseInt(countArg, 10);
if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
  console.error('usage: pnpm mail:outbox [count 1..1000] [email]');
  process.exit(2);
}
const config = loadConfig();
const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
try {
  if ((await db.pendingMigrations()) > 0) {
    console.error('the database is not migrated: run pnpm db:migrate (or start the server once)');
    process.exitCode = 1;
  } else {
    await print();
  }
} finally {
  await db.close();
}

async function print() {
  const mails = await latestOutboxMail({ db: db.db, limit, to });
  if (mails.length === 0) console.log('the outbox is empty');
  for (const m of mails.reverse()) {
    console.log(`--- ${m.createdAt.toISOString()}  to: ${m.to}  subject: ${m.subject}\n${m.text}`);
  }
}
