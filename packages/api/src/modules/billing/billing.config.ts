import { z } from 'zod';
import { int, setting } from '../../lib/settings';

export const billingConfig = {
  billing: {
    mode: setting({
      env: 'BILLING_MODE',
      schema: z.enum(['off', 'prepaid']),
      default: 'off',
      doc: "off: spend is metered and budgets enforced, no balance needed; prepaid: paid models also need the project's balance",
    }),
    leaseCalls: setting({
      env: 'GATEWAY_LEASE_CALLS',
      schema: int(1, 10_000),
      default: '32',
      doc: "an instance takes a project's budget and balance in chunks of this many calls' worst cases (at most half of what is left), and admits calls against them in memory",
    }),
    leaseIdleMs: setting({
      env: 'GATEWAY_LEASE_IDLE_MS',
      schema: int(50, 600_000),
      default: '2000',
      doc: 'what an instance holds of a project budget goes back after this long without a call',
    }),
  },
};
