import type { Logger } from './logger';

type Task = () => unknown;

/**
 * What an app instance owns and must let go of, and the background work it runs. Whoever
 * builds a resource defers its disposal right there, so the close order is the build order
 * reversed: a thing always closes before what it was built on (the database last).
 */
export interface Lifecycle {
  /** Pushes a disposer onto the stack that `closeAll` unwinds, newest first. */
  defer(name: string, dispose: Task): void;
  /** Runs `task` once now; a failure is logged as "<name> failed", never thrown. */
  run(name: string, task: Task): Promise<void>;
  /**
   * Runs `task` every `ms` until `closeAll` starts, logging failures like `run` (the next
   * tick tries again). The timer never keeps the process alive.
   */
  every(ms: number, name: string, task: Task): void;
  /** `run` now (awaited), then `every` `ms`: a sweep that must pass once before serving. */
  nowAndEvery(ms: number, name: string, task: Task): Promise<void>;
  /**
   * Runs every disposer, newest first. One that throws is logged and the rest still run,
   * so a failing close cannot leave the database open; the first failure is rethrown after.
   */
  closeAll(): Promise<void>;
}

export function createLifecycle(log: Logger): Lifecycle {
  const stack: { name: string; dispose: Task }[] = [];
  let closing = false;

  async function run(name: string, task: Task): Promise<void> {
    try {
      await task();
    } catch (err) {
      log.error({ err }, `${name} failed`);
    }
  }

  function every(ms: number, name: string, task: Task): void {
    // No new passes once closing starts, even while a slower disposer is still running.
    const timer = setInterval(() => {
      if (!closing) void run(name, task);
    }, ms);
    timer.unref();
    stack.push({ name, dispose: () => clearInterval(timer) });
  }

  return {
    defer(name, dispose) {
      stack.push({ name, dispose });
    },
    run,
    every,
    async nowAndEvery(ms, name, task) {
      await run(name, task);
      every(ms, name, task);
    },
    async closeAll() {
      closing = true;
      const failures: unknown[] = [];
      for (let next = stack.pop(); next; next = stack.pop()) {
        try {
          await next.dispose();
        } catch (err) {
          log.error({ err }, `closing ${next.name} failed`);
          failures.push(err);
        }
      }
      if (failures.length > 0) throw failures[0];
    },
  };
}
