import type { Db } from '../../db/client';
import type { Lifecycle } from '../../lib/lifecycle';
import type { Logger } from '../../lib/logger';
import { type HelpSettings, setUpHelp } from './help.service';

/**
 * Once at start-up: the help project, its daily budget, and the documentation loaded from
 * PLATFORM_DOCS_PATH when it changed. A failure (docs missing, unreadable) is logged and does
 * not stop the server; help then answers from whatever docs were loaded before.
 */
export async function startHelpJobs(opts: {
  life: Lifecycle;
  db: Db;
  settings: HelpSettings;
  log: Logger;
}): Promise<void> {
  await opts.life.run('help set-up', () =>
    setUpHelp({ db: opts.db, settings: opts.settings, log: opts.log }),
  );
}
