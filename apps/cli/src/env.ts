/**
 * The environment variables the CLI reads, in one place (the server reads its own through
 * packages/api's config module). Read on each call, so tests and scripts can set them.
 */
export const cliEnv = {
  /** Server URL when --url is not given. */
  url: () => process.env.SMARTSPACE_URL || undefined,
  /** A project API key (ssk_…) to use instead of the saved credentials. */
  apiKey: () => process.env.SMARTSPACE_API_KEY || undefined,
  /** Default project (id or name) when --project is not given. */
  project: () => process.env.SMARTSPACE_PROJECT || undefined,
  /** Base directory of the credentials file (XDG Base Directory). */
  configHome: () => process.env.XDG_CONFIG_HOME || undefined,
  /** Where `pnpm smartspace` was typed (pnpm runs scripts from the workspace root). */
  invokedFrom: () =>
    process.env.npm_lifecycle_event === 'smartspace'
      ? process.env.INIT_CWD || undefined
      : undefined,
};
