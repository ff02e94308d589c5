/** The pino-compatible subset of a logger that the api uses. */
export interface Logger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

/** For callers that pass no logger (tests, tools). */
export const silentLog: Logger = { error() {}, warn() {}, info() {} };
