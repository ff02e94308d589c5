import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { NavLink, useNavigate, useParams } from 'react-router';
import { displayText, runningReply } from '../chat/state';
import { useConversation } from '../chat/useConversation';
import { client, useTRPC } from '../trpc';
import { ErrorText } from './auth';
import { Composer, MessageItem } from './chat';

/** Questions about SmartSpace itself, answered from its documentation; private to each person. */
export function HelpPage() {
  const { conversationId } = useParams();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const list = useInfiniteQuery(
    trpc.help.conversations.list.infiniteQueryOptions(
      { limit: 30 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const create = useMutation(
    trpc.help.conversations.create.mutationOptions({
      onSuccess: async (c) => {
        await queryClient.invalidateQueries({ queryKey: trpc.help.conversations.list.pathKey() });
        navigate(`/help/${c.id}`);
      },
    }),
  );
  return (
    <div className="chat">
      <aside className="sidebar" aria-label="Help conversations">
        <button
          type="button"
          className="new-chat"
          disabled={create.isPending}
          onClick={() => create.mutate({})}
        >
          New help chat
        </button>
        <ErrorText error={create.error ?? list.error} />
        <ul>
          {list.data?.pages.flatMap((p) =>
            p.items.map((c) => (
              <li key={c.id}>
                <NavLink to={`/help/${c.id}`}>{c.title ?? 'Help chat'}</NavLink>
              </li>
            )),
          )}
          {list.hasNextPage && (
            <li>
              <button type="button" className="link" onClick={() => void list.fetchNextPage()}>
                Load more help conversations
              </button>
            </li>
          )}
        </ul>
      </aside>
      {conversationId ? (
        <HelpConversation key={conversationId} conversationId={conversationId} />
      ) : (
        <section className="conversation empty">
          <p>Ask how SmartSpace works: start a new help chat.</p>
        </section>
      )}
    </div>
  );
}

function HelpConversation({ conversationId }: { conversationId: string }) {
  const { state, loaded, error } = useConversation(conversationId, 'help');
  const running = runningReply(state);
  const cancel = useMutation({
    mutationFn: (replyId: string) => client.help.cancel.mutate({ replyId }),
  });
  return (
    <section className="conversation" aria-label="Help conversation">
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <ErrorText error={cancel.error} />
      <ol className="messages" aria-label="Messages" aria-busy={!loaded}>
        {state.messages.map((m) => (
          <MessageItem
            key={m.id}
            message={m}
            text={displayText(state, m)}
            canWrite={false}
            canRegenerate={false}
            onRegenerate={() => {}}
            price={undefined}
          />
        ))}
      </ol>
      <Composer
        running={running}
        onSend={({ content }) => client.help.send.mutate({ conversationId, content })}
        onStop={() => running && cancel.mutate(running.id)}
        stopping={cancel.isPending}
      />
    </section>
  );
}
