import type { ChatEvent } from '@smartspace/client';

export type { ChatEvent, Conversation, Message } from '@smartspace/client';

/** What chat.onEvent and help.onEvent deliver: an event with its id, for resuming after it. */
export interface TrackedChatEvent {
  id: string;
  data: ChatEvent;
}
