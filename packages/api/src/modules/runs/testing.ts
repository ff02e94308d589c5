import { expect } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from '../../ai/testing/fake-anthropic';
import type { Session } from '../../index';
import { createTestApi, type TestApi } from '../../testing';

export const MODEL = 'claude-haiku-4-5';

export async function projectWith(t: TestApi, name: string) {
  const owner: Session = await t.signUp(name);
  const c = t.caller(owner.accessToken);
  const project = await c.projects.create({ name });
  return { owner, c, projectId: project.id };
}

/** Waits until the run has ended and returns it with its steps. */
export async function settled(c: ReturnType<TestApi['caller']>, runId: string) {
  await expect
    .poll(async () => (await c.runs.get({ runId })).status, { timeout: 15_000, interval: 50 })
    .toMatch(/succeeded|failed|cancelled/);
  return c.runs.get({ runId });
}

/** Every stored progress event of a run, in order (what a subscriber resuming from 0 sees). */
export async function events(t: TestApi, runId: string) {
  const stored = await t.api.deps.bus.readAfter(`run:${runId}`, 0, 1000);
  return stored.map((e) => ({ type: e.type, ...e.payload }));
}

/** A test api whose Claude models are served by a local Messages API server. */
export async function startWithFakeAnthropic(env: Record<string, string> = {}) {
  const fake: FakeAnthropic = await startFakeAnthropic();
  const t = await createTestApi({
    ANTHROPIC_API_KEY: fake.apiKey,
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_MAX_RETRIES: '0',
    ...env,
  });
  return {
    fake,
    t,
    async close() {
      await t.close();
      await fake.close();
    },
  };
}
