import { int, setting } from '../../lib/settings';

export const chatConfig = {
  chat: {
    maxOutputTokens: setting({
      env: 'CHAT_MAX_OUTPUT_TOKENS',
      schema: int(1, 128_000),
      default: '4096',
      doc: 'most tokens per chat reply (capped by the model)',
    }),
  },
};
