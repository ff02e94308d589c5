import { closeClient, createClient, type RouterOutputs, TRPCClientError } from '@smartspace/client';
import WebSocket from 'ws';

type Message = RouterOutputs['chat']['messages']['list']['items'][number];

// Node 20 has no global WebSocket: subscriptions go over the `ws` package's.
const client = createClient({
  url: process.env.SMARTSPACE_URL ?? 'http://127.0.0.1:3000/trpc',
  WebSocket,
});

/** Sends `content` and resolves with the finished reply, printing it as it streams. */
function ask(conversationId: string, content: string): Promise<Message> {
  return new Promise((resolve, reject) => {
    const subscription = client.chat.onEvent.subscribe(
      { conversationId },
      {
        // Send once the subscription is live, so no event of the reply is missed.
        onStarted() {
          client.chat.send.mutate({ conversationId, content }).catch(reject);
        },
        onData({ data: event }) {
          if (event.type === 'reply.delta') process.stdout.write(event.text);
          if (event.type === 'reply.completed') {
            subscription.unsubscribe();
            resolve(event.message);
          }
          if (event.type === 'reply.failed') {
            subscription.unsubscribe();
            reject(new Error(`${event.appCode}: ${event.message}`));
          }
        },
        onError: reject,
      },
    );
  });
}

async function main(): Promise<void> {
  // The session returned by register (or login) is kept by the client and refreshed for you.
  const session = await client.auth.register.mutate({
    email: `demo-${Date.now()}@example.com`,
    password: 'a long enough password',
    name: 'Demo',
  });
  console.log(`signed in as ${session.user.email}`);

  const project = await client.projects.create.mutate({ name: 'Demo project' });
  const conversation = await client.chat.conversations.create.mutate({ projectId: project.id });

  process.stdout.write('reply: ');
  const reply = await ask(conversation.id, 'Hello from outside the monorepo');
  console.log(`\nstatus: ${reply.status}, ${reply.usage?.outputTokens ?? 0} output tokens`);

  // Errors carry a stable appCode.
  try {
    await client.projects.create.mutate({ name: '' });
  } catch (e) {
    if (!(e instanceof TRPCClientError)) throw e;
    console.log(`refused: ${e.data?.appCode}`);
  }
}

main()
  .catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  })
  // Closes the WebSocket, so the process can exit.
  .finally(() => closeClient(client));
