import { z } from 'zod';
import { setting } from '../../lib/settings';

export const billingConfig = {
  billing: {
    mode: setting({
      env: 'BILLING_MODE',
      schema: z.enum(['off', 'prepaid']),
      default: 'off',
      doc: "off: spend is metered and budgets enforced, no balance needed; prepaid: paid models also need the project's balance",
    }),
  },
};
