import type {
  MessageParam,
  Tool,
  ToolResultBlockParam,
} from '@anthropic-ai/sdk/resources/messages';
import type { CacheControl, ChatTurn, ContentBlock, ModelEvent, ToolSpec } from './provider';
import { ModelError } from './provider';

/**
 * Tool use on the Messages API wire: our content blocks and tool specs in the shapes the
 * API expects, and the reassembly of streamed tool input (JSON sent in fragments).
 */

export function toMessageParam(turn: ChatTurn): MessageParam {
  if (typeof turn.content === 'string') return { role: turn.role, content: turn.content };
  return {
    role: turn.role,
    // The API rejects empty text blocks; a runner that records "no text before the tool
    // call" as '' should not fail the whole request for it.
    content: turn.content
      .filter((b) => b.type !== 'text' || b.text !== '')
      .map((b) => withCache(toBlockParam(b), b.cacheControl)),
  };
}

/** Adds Anthropic's `cache_control` to a block or tool when the caller marked it. */
export function withCache<T extends object>(
  param: T,
  cache: CacheControl | undefined,
): T & { cache_control?: CacheControl } {
  return cache ? { ...param, cache_control: { ...cache } } : param;
}

function toBlockParam(b: ContentBlock) {
  switch (b.type) {
    case 'text':
      return { type: 'text' as const, text: b.text };
    case 'tool_use':
      return { type: 'tool_use' as const, id: b.id, name: b.name, input: b.input };
    case 'tool_result': {
      const param: ToolResultBlockParam = {
        type: 'tool_result',
        tool_use_id: b.toolUseId,
        content: b.content,
      };
      if (b.isError !== undefined) param.is_error = b.isError;
      return param;
    }
  }
}

export function toTool(spec: ToolSpec): Tool {
  const tool: Tool = {
    name: spec.name,
    description: spec.description,
    // Passed as given: a schema that is not `type: "object"` gets the API's own 400.
    input_schema: spec.inputSchema as Tool.InputSchema,
  };
  return withCache(tool, spec.cacheControl);
}

type ToolUseEvent = Extract<ModelEvent, { type: 'tool_use' }>;

/**
 * Tool blocks in flight, by content block index. Input arrives as `input_json_delta`
 * fragments that only form valid JSON once the block stops.
 */
export class ToolInputs {
  private readonly open = new Map<number, { id: string; name: string; json: string }>();
  /** A block whose JSON did not parse: fatal unless the reply was cut at max_tokens. */
  private malformed: ModelError | undefined;

  start(index: number, id: string, name: string): void {
    this.open.set(index, { id, name, json: '' });
  }

  append(index: number, partialJson: string): void {
    const block = this.open.get(index);
    // Server tools (web search…) stream input too; they are not ours to run.
    if (block) block.json += partialJson;
  }

  /** The finished call, or undefined for a block that is not a tool call of ours. */
  stop(index: number): ToolUseEvent | undefined {
    const block = this.open.get(index);
    if (!block) return undefined;
    this.open.delete(index);
    const input = parseInput(block.json);
    if (input === undefined) {
      // Held back rather than thrown: a reply cut by max_tokens ends mid-JSON legitimately,
      // and only the later message_delta says so.
      this.malformed ??= new ModelError(
        'model.bad_response',
        `Anthropic sent malformed input for tool "${block.name}" (${block.id})`,
      );
      return undefined;
    }
    return { type: 'tool_use', id: block.id, name: block.name, input };
  }

  /**
   * Throws when the reply left a tool call unusable. With stop reason max_tokens the call
   * was truncated, which the caller learns from the stop reason (and the call is dropped).
   */
  check(stopReason: string | null): void {
    if (stopReason === 'max_tokens') return;
    if (this.malformed) throw this.malformed;
    const [unclosed] = this.open.values();
    if (unclosed) {
      throw new ModelError(
        'model.bad_response',
        `Anthropic ended the message inside tool call "${unclosed.name}" (${unclosed.id})`,
      );
    }
  }
}

/** The tool input object, or undefined when the JSON is not a complete object. */
function parseInput(json: string): Record<string, unknown> | undefined {
  // A tool without parameters gets no fragments at all.
  if (json.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
