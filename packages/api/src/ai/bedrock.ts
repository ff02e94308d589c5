import type { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk';
import { type AnthropicModel, type MessagesClient, messagesProvider } from './anthropic';
import type { ModelProvider } from './provider';

/**
 * Claude on Amazon Bedrock, through Anthropic's Bedrock SDK: the same Messages API shapes
 * over Bedrock's transport (SigV4-signed invoke-with-response-stream, event-stream framing
 * that the SDK turns back into Messages events), so the Claude adapter's stream handling,
 * error mapping and tool assembly apply unchanged.
 */

export interface BedrockProviderOptions {
  awsRegion: string;
  awsAccessKey: string;
  awsSecretKey: string;
  /** Defaults to the region's bedrock-runtime endpoint; tests point it at a local stub. */
  baseURL?: string | undefined;
  maxRetries?: number | undefined;
  timeoutMs?: number | undefined;
  models: AnthropicModel[];
}

export function createBedrockProvider(options: BedrockProviderOptions): ModelProvider {
  // The SDK (with the AWS signing stack) is loaded on the first call: it takes a noticeable
  // part of start-up, and most deployments route nothing to Bedrock.
  let client: Promise<AnthropicBedrock> | null = null;
  const load = () => {
    client ??= import('@anthropic-ai/bedrock-sdk').then(
      ({ AnthropicBedrock }) =>
        new AnthropicBedrock({
          awsRegion: options.awsRegion,
          awsAccessKey: options.awsAccessKey,
          awsSecretKey: options.awsSecretKey,
          // Explicit, so the SDK does not read ANTHROPIC_BEDROCK_BASE_URL or AWS_* itself.
          ...(options.baseURL ? { baseURL: options.baseURL } : {}),
          maxRetries: options.maxRetries ?? 2,
          timeout: options.timeoutMs ?? 600_000,
        }),
    );
    return client;
  };
  const lazy = {
    messages: {
      create: (async (params: unknown, opts: unknown) =>
        // biome-ignore lint/suspicious/noExplicitAny: forwarded unchanged to the same SDK method
        (await load()).messages.create(params as any, opts as any)) as unknown,
    },
  } as MessagesClient;
  return messagesProvider(lazy, options.models);
}
