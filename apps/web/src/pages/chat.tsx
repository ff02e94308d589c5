import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { NavLink, useNavigate, useParams } from 'react-router';
import { Markdown } from '../chat/Markdown';
import {
  type AgentStep,
  clearProgress,
  displayText,
  pendingApprovals,
  type ReplySteps,
  runningReply,
} from '../chat/state';
import type { Conversation, Message } from '../chat/types';
import { useConversation } from '../chat/useConversation';
import { describeFailure, errorMessage, isRetryable } from '../errors';
import { openFile, type UploadedFile, uploadFile } from '../files';
import { roleAtLeast, useCurrentProject, useSession } from '../hooks';
import { Decision } from '../runs/Decision';
import { client, useTRPC } from '../trpc';
import { ErrorText } from './auth';

export function ChatPage() {
  const { conversationId } = useParams();
  const { projectId, role } = useCurrentProject();
  return (
    <div className="chat">
      <ConversationList projectId={projectId} canCreate={roleAtLeast(role, 'member')} />
      {conversationId ? (
        <ConversationView
          key={conversationId}
          projectId={projectId}
          conversationId={conversationId}
        />
      ) : (
        <section className="conversation empty">
          <p>Pick a conversation, or start a new chat.</p>
        </section>
      )}
    </div>
  );
}

function ConversationList({ projectId, canCreate }: { projectId: string; canCreate: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const list = useInfiniteQuery(
    trpc.chat.conversations.list.infiniteQueryOptions(
      { projectId, limit: 30 },
      { getNextPageParam: (page) => page.nextCursor ?? undefined },
    ),
  );
  const create = useMutation(
    trpc.chat.conversations.create.mutationOptions({
      onSuccess: async (c) => {
        await queryClient.invalidateQueries({ queryKey: trpc.chat.conversations.list.pathKey() });
        navigate(`/projects/${projectId}/chat/${c.id}`);
      },
    }),
  );
  // Who a new chat talks to: Claude, or one of the project's agents.
  const agents = useQuery(trpc.agents.list.queryOptions({ projectId }));
  const active = (agents.data ?? []).filter((a) => a.status === 'active');
  const [agentId, setAgentId] = useState('');
  // Loads the next page when the end of the list scrolls into view.
  const sentinel = useRef<HTMLLIElement>(null);
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = list;
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !hasNextPage) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !isFetchingNextPage) void fetchNextPage();
    });
    io.observe(el);
    return () => io.disconnect();
  }, [hasNextPage, isFetchingNextPage, fetchNextPage]);

  return (
    <aside className="sidebar" aria-label="Conversations">
      {canCreate && (
        <div className="new-chat-row">
          <button
            type="button"
            className="new-chat"
            onClick={() => create.mutate({ projectId, ...(agentId ? { agentId } : {}) })}
            disabled={create.isPending}
          >
            New chat
          </button>
          {active.length > 0 && (
            <select
              aria-label="Talk to"
              value={agentId}
              onChange={(e) => setAgentId(e.target.value)}
            >
              <option value="">with Claude</option>
              {active.map((a) => (
                <option key={a.id} value={a.id}>
                  with agent {a.name}
                </option>
              ))}
            </select>
          )}
        </div>
      )}
      <ErrorText error={create.error ?? list.error} />
      <ul>
        {list.data?.pages.flatMap((p) =>
          p.items.map((c) => (
            <li key={c.id}>
              <NavLink to={`/projects/${projectId}/chat/${c.id}`}>{c.title ?? 'New chat'}</NavLink>
            </li>
          )),
        )}
        {hasNextPage && (
          <li ref={sentinel}>
            <button type="button" className="link" onClick={() => void fetchNextPage()}>
              {isFetchingNextPage ? 'Loading…' : 'Load more conversations'}
            </button>
          </li>
        )}
      </ul>
    </aside>
  );
}

function usd(n: number): string {
  return n < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

function ConversationView({
  projectId,
  conversationId,
}: {
  projectId: string;
  conversationId: string;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const { role } = useCurrentProject();
  const canWrite = roleAtLeast(role, 'member');
  const conversationQuery = useQuery(trpc.chat.conversations.get.queryOptions({ conversationId }));
  const models = useQuery(trpc.models.list.queryOptions());
  const { state, loaded, error } = useConversation(conversationId);
  const conversation: Conversation | undefined = state.conversation ?? conversationQuery.data;
  const running = runningReply(state);
  const [actionError, setActionError] = useState<unknown>(null);

  const refreshList = () =>
    queryClient.invalidateQueries({ queryKey: trpc.chat.conversations.list.pathKey() });
  const update = useMutation(
    trpc.chat.conversations.update.mutationOptions({
      onSuccess: async (c) => {
        queryClient.setQueryData(trpc.chat.conversations.get.queryKey({ conversationId }), c);
        await refreshList();
      },
      onError: setActionError,
    }),
  );
  const remove = useMutation(
    trpc.chat.conversations.delete.mutationOptions({
      onSuccess: async () => {
        clearProgress(conversationId);
        await refreshList();
        navigate(`/projects/${projectId}/chat`);
      },
      onError: setActionError,
    }),
  );
  const cancel = useMutation(trpc.chat.cancel.mutationOptions({ onError: setActionError }));
  const regenerate = useMutation(trpc.chat.regenerate.mutationOptions({ onError: setActionError }));

  // An untitled chat is named after its first question (by its author), so the sidebar
  // tells chats apart.
  const session = useSession();
  const titled = useRef(false);
  const firstQuestion = state.messages[0];
  useEffect(() => {
    if (titled.current || !conversation || conversation.title) return;
    if (firstQuestion?.role !== 'user' || firstQuestion.authorId !== session?.user.id) return;
    titled.current = true;
    update.mutate({
      conversationId,
      title: firstQuestion.content.replace(/\s+/g, ' ').trim().slice(0, 60),
    });
  }, [conversation, firstQuestion, session, conversationId, update]);

  // Deleted elsewhere (another tab or member): leave.
  useEffect(() => {
    if (state.deleted) navigate(`/projects/${projectId}/chat`, { replace: true });
  }, [state.deleted, navigate, projectId]);

  const stop = () => {
    if (running) cancel.mutate({ replyId: running.id });
  };
  const modelList = models.data ?? [];
  const priceOf = (id: string | null) => modelList.find((m) => m.id === id);
  const currentModel = conversation?.model ?? modelList.find((m) => m.default)?.id ?? '';
  const lastAssistant = state.messages.findLast((m) => m.role === 'assistant');
  const agents = useQuery({
    ...trpc.agents.list.queryOptions({ projectId }),
    enabled: Boolean(conversation?.agentId),
  });
  const agentName = conversation?.agentId
    ? (agents.data?.find((a) => a.id === conversation.agentId)?.name ?? 'an agent')
    : null;

  // Follow the newest text while the reader is at the bottom; leave them be once they scroll up.
  const listRef = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = listRef.current;
    if (el && stick.current && state.messages.length > 0) el.scrollTop = el.scrollHeight;
  }, [state]);

  return (
    <section className="conversation" aria-label="Conversation">
      <ConversationHeader
        agentName={agentName}
        conversation={conversation}
        canWrite={canWrite}
        models={modelList}
        currentModel={currentModel}
        onUpdate={(patch) => update.mutate({ conversationId, ...patch })}
        onDelete={() => {
          if (window.confirm('Delete this conversation and all its messages?')) {
            remove.mutate({ conversationId });
          }
        }}
      />
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <ErrorText error={actionError} />
      <ol
        ref={listRef}
        className="messages"
        aria-label="Messages"
        aria-busy={!loaded}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        {state.messages.map((m) => (
          <MessageItem
            key={m.id}
            message={m}
            text={displayText(state, m)}
            canWrite={canWrite && !running}
            canRegenerate={canWrite && !running && m.id === lastAssistant?.id}
            onRegenerate={() => {
              setActionError(null);
              regenerate.mutate({ conversationId });
            }}
            price={priceOf(m.model)}
            steps={state.steps[m.id]}
            canApprove={roleAtLeast(role, 'member')}
          />
        ))}
      </ol>
      {canWrite && (
        <Composer
          projectId={projectId}
          onSend={(input) => client.chat.send.mutate({ conversationId, ...input })}
          running={running}
          onStop={stop}
          stopping={cancel.isPending}
        />
      )}
    </section>
  );
}

type ModelOption = {
  id: string;
  inputPricePerMTok: string;
  outputPricePerMTok: string;
  default: boolean;
};

function ConversationHeader(props: {
  /** A conversation with an agent: its name; the agent's model and instructions apply. */
  agentName: string | null;
  conversation: Conversation | undefined;
  canWrite: boolean;
  models: ModelOption[];
  currentModel: string;
  onUpdate: (patch: {
    title?: string;
    systemPrompt?: string | null;
    model?: string;
    grounded?: boolean;
  }) => void;
  onDelete: () => void;
}) {
  const c = props.conversation;
  const [title, setTitle] = useState<string | null>(null);
  const [prompt, setPrompt] = useState<string | null>(null);
  const [showSettings, setShowSettings] = useState(false);
  // Choices shown at once; the server's answer (or its event) confirms them.
  const [grounded, setGrounded] = useState<boolean | null>(null);
  const [model, setModel] = useState<string | null>(null);
  if (!c) return <header className="conv-header">Loading…</header>;
  return (
    <header className="conv-header">
      {props.canWrite ? (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (title?.trim()) props.onUpdate({ title: title.trim() });
            setTitle(null);
          }}
        >
          <input
            aria-label="Conversation title"
            className="title-input"
            placeholder="New chat"
            value={title ?? c.title ?? ''}
            onChange={(e) => setTitle(e.target.value)}
          />
          {title !== null && <button type="submit">Rename</button>}
        </form>
      ) : (
        <h1>{c.title ?? 'New chat'}</h1>
      )}
      {props.agentName !== null ? (
        <span className="agent-badge">Agent: {props.agentName}</span>
      ) : (
        <label className="field inline">
          <span>Model</span>
          <select
            aria-label="Model"
            disabled={!props.canWrite}
            value={model ?? props.currentModel}
            onChange={(e) => {
              setModel(e.target.value);
              props.onUpdate({ model: e.target.value });
            }}
          >
            {props.models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id} (${m.inputPricePerMTok} in / ${m.outputPricePerMTok} out per MTok)
              </option>
            ))}
          </select>
        </label>
      )}
      {props.canWrite && (
        <>
          {props.agentName === null && (
            <button
              type="button"
              className="link"
              aria-expanded={showSettings}
              onClick={() => setShowSettings((s) => !s)}
            >
              Settings
            </button>
          )}
          <button type="button" className="link danger" onClick={props.onDelete}>
            Delete conversation
          </button>
        </>
      )}
      {showSettings && (
        <div className="settings">
          <label className="check">
            <input
              type="checkbox"
              checked={grounded ?? c.grounded}
              onChange={(e) => {
                setGrounded(e.target.checked);
                props.onUpdate({ grounded: e.target.checked });
              }}
            />
            Ground replies in the project's files
          </label>
          <label className="field">
            <span>System prompt</span>
            <textarea
              rows={3}
              value={prompt ?? c.systemPrompt ?? ''}
              onChange={(e) => setPrompt(e.target.value)}
            />
          </label>
          <button
            type="button"
            disabled={prompt === null}
            onClick={() => {
              props.onUpdate({ systemPrompt: prompt?.trim() ? prompt : null });
              setPrompt(null);
            }}
          >
            Save system prompt
          </button>
        </div>
      )}
    </header>
  );
}

export function MessageItem(props: {
  message: Message;
  text: string;
  canWrite: boolean;
  canRegenerate: boolean;
  onRegenerate: () => void;
  price: ModelOption | undefined;
  /** A reply an agent's run writes: what the run did, and approvals it waits for. */
  steps?: ReplySteps | undefined;
  canApprove?: boolean;
}) {
  const { message: m } = props;
  const trpc = useTRPC();
  const session = useSession();
  const [editing, setEditing] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const [fileError, setFileError] = useState<string | null>(null);
  const edit = useMutation(trpc.chat.edit.mutationOptions({ onSuccess: () => setEditing(null) }));
  const open = (fileId: string | null, name: string) => {
    if (!fileId) return;
    openFile(fileId, name).catch((e: unknown) => setFileError(errorMessage(e)));
  };
  const usage = m.usage;
  const cost =
    usage && props.price
      ? (usage.inputTokens * Number(props.price.inputPricePerMTok) +
          usage.outputTokens * Number(props.price.outputPricePerMTok)) /
        1e6
      : null;
  const who = m.role === 'user' ? 'You' : 'Assistant';
  return (
    <li className={`message ${m.role}`} aria-label={`${who} message`} data-status={m.status}>
      <div className="who">{who}</div>
      {editing !== null ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            edit.mutate({ messageId: m.id, content: editing });
          }}
        >
          <textarea
            aria-label="Edit message"
            rows={3}
            value={editing}
            onChange={(e) => setEditing(e.target.value)}
          />
          <ErrorText error={edit.error} />
          <div className="row">
            <button type="submit" disabled={edit.isPending || !editing.trim()}>
              Save and resend
            </button>
            <button type="button" className="link" onClick={() => setEditing(null)}>
              Cancel edit
            </button>
          </div>
        </form>
      ) : m.role === 'user' ? (
        <p className="user-text">{props.text}</p>
      ) : (
        <Markdown text={props.text} />
      )}
      {props.steps && (
        <AgentSteps
          steps={props.steps}
          live={m.status === 'streaming'}
          canApprove={props.canApprove ?? false}
        />
      )}
      {m.status === 'streaming' && (
        <span className="typing" role="status">
          Replying…
        </span>
      )}
      {(m.status === 'failed' || m.status === 'cancelled') && (
        <p
          role={m.status === 'failed' ? 'alert' : 'status'}
          className={m.status === 'failed' ? 'error' : 'muted'}
        >
          {m.status === 'cancelled'
            ? 'Stopped.'
            : describeFailure(m.errorCode, 'The reply failed.')}
        </p>
      )}
      {m.attachments.length > 0 && (
        <ul className="chips" aria-label="Attachments">
          {m.attachments.map((a) => (
            <li key={a.fileId}>
              <button type="button" className="chip" onClick={() => open(a.fileId, a.name)}>
                {a.name}
              </button>
            </li>
          ))}
        </ul>
      )}
      {m.citations.length > 0 && (
        <ul className="chips" aria-label="Citations">
          {m.citations.map((c, i) => (
            // Citations may repeat a file and have no id; their order is stable.
            // biome-ignore lint/suspicious/noArrayIndexKey: see above
            <li key={i}>
              <button
                type="button"
                className="chip"
                title={c.excerpt}
                disabled={!c.fileId}
                aria-label={`Open cited file ${c.name}`}
                onClick={() => open(c.fileId, c.name)}
              >
                [{i + 1}] {c.name}
              </button>
            </li>
          ))}
        </ul>
      )}
      {fileError && (
        <p role="alert" className="error">
          {fileError}
        </p>
      )}
      <div className="meta">
        {usage && (
          <span>
            {usage.inputTokens} in / {usage.outputTokens} out tokens
            {cost !== null && ` · ${usd(cost)}`}
          </span>
        )}
        {m.role === 'assistant' && m.status !== 'streaming' && props.text && (
          <button
            type="button"
            className="link"
            aria-label="Copy reply"
            onClick={() => {
              void navigator.clipboard?.writeText(props.text).then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy'}
          </button>
        )}
        {props.canRegenerate && (
          <button type="button" className="link" onClick={props.onRegenerate}>
            {m.status === 'failed' && isRetryable(m.errorCode) ? 'Retry' : 'Regenerate'}
          </button>
        )}
        {m.role === 'user' &&
          props.canWrite &&
          editing === null &&
          m.authorId === session?.user.id && (
            <button
              type="button"
              className="link"
              aria-label="Edit message"
              onClick={() => setEditing(m.content)}
            >
              Edit
            </button>
          )}
      </div>
    </li>
  );
}

/**
 * The message box: Enter sends, Shift+Enter adds a line, Esc stops the running reply. With a
 * project, files can be attached (uploaded to the project first).
 */
export function Composer(props: {
  projectId?: string;
  running: Message | undefined;
  onSend: (input: { content: string; fileIds?: string[] }) => Promise<unknown>;
  onStop: () => void;
  stopping: boolean;
}) {
  const [text, setText] = useState('');
  const [attached, setAttached] = useState<UploadedFile[]>([]);
  const [progress, setProgress] = useState<number | null>(null);
  const [uploadError, setUploadError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const send = useMutation({
    mutationFn: props.onSend,
    onSuccess: () => {
      setText('');
      setAttached([]);
    },
  });
  const submit = () => {
    const content = text.trim();
    if (!content || props.running || send.isPending) return;
    send.mutate({
      content,
      ...(attached.length > 0 ? { fileIds: attached.map((f) => f.id) } : {}),
    });
  };
  const projectId = props.projectId;
  const attach = async (files: FileList | null) => {
    if (!projectId) return;
    setUploadError(null);
    for (const file of Array.from(files ?? [])) {
      try {
        setProgress(0);
        const stored = await uploadFile(projectId, file, setProgress);
        setAttached((a) => [...a, stored]);
      } catch (e) {
        setUploadError(errorMessage(e));
      } finally {
        setProgress(null);
      }
    }
    if (fileInput.current) fileInput.current.value = '';
  };
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
      onKeyDown={(e) => {
        if (e.key === 'Escape' && props.running) {
          e.preventDefault();
          props.onStop();
        }
      }}
    >
      {attached.length > 0 && (
        <ul className="chips" aria-label="Attached files">
          {attached.map((f) => (
            <li key={f.id}>
              <button
                type="button"
                className="chip"
                aria-label={`Remove attachment ${f.name}`}
                onClick={() => setAttached((a) => a.filter((x) => x.id !== f.id))}
              >
                {f.name} ×
              </button>
            </li>
          ))}
        </ul>
      )}
      {progress !== null && <progress aria-label="Upload progress" max={1} value={progress} />}
      {uploadError && (
        <p role="alert" className="error">
          {uploadError}
        </p>
      )}
      <ErrorText error={send.error} />
      <div className="row">
        <textarea
          aria-label="Message"
          placeholder="Ask anything. Enter sends, Shift+Enter adds a line, Esc stops."
          rows={3}
          value={text}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              submit();
            }
          }}
        />
        <div className="column">
          {projectId && (
            <>
              {/* Reached through the Attach button; kept out of the tab order. */}
              <input
                ref={fileInput}
                type="file"
                multiple
                tabIndex={-1}
                aria-label="Attach files"
                className="sr-only"
                onChange={(e) => void attach(e.target.files)}
              />
              <button
                type="button"
                className="secondary"
                onClick={() => fileInput.current?.click()}
              >
                Attach
              </button>
            </>
          )}
          {props.running ? (
            <button
              type="button"
              className="danger"
              onClick={props.onStop}
              disabled={props.stopping}
            >
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!text.trim() || send.isPending}>
              Send
            </button>
          )}
        </div>
      </div>
    </form>
  );
}

/** A step of an agent's run, in one line. */
function stepLine(s: AgentStep): string {
  const json = (v: unknown) => {
    const text = JSON.stringify(v) ?? '';
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  };
  switch (s.type) {
    case 'tool.called':
      return `Called ${s.tool} ${json(s.input)}`;
    case 'tool.result':
      return s.isError ? `${s.tool} failed: ${json(s.output)}` : `${s.tool} → ${json(s.output)}`;
    case 'handoff':
      return 'Handed over to another agent';
    case 'approval.requested':
      return `Waiting for approval: ${s.tool ?? 'a model step'} ${json(s.input)}`;
    case 'approval.decided':
      return `${s.decision === 'approved' ? 'Approved' : 'Rejected'}${s.note ? `: ${s.note}` : ''}`;
    default:
      return s.type;
  }
}

/**
 * What the agent's run did for this reply, and the approvals it waits for: a member may
 * approve or reject here (the server checks the approver role and says so).
 */
function AgentSteps(props: { steps: ReplySteps; live: boolean; canApprove: boolean }) {
  const pending = props.live ? pendingApprovals(props.steps) : [];
  return (
    <div className="agent-steps">
      <ol aria-label="Agent steps">
        {props.steps.steps.map((s, i) => (
          // Steps only grow, in order.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          <li key={i} className={`step ${s.type.replace('.', '-')}`}>
            {stepLine(s)}
          </li>
        ))}
      </ol>
      {props.canApprove &&
        pending.map((p) => (
          <fieldset key={p.approvalId} className="approval" aria-label="Approval">
            <Decision runId={props.steps.runId} approvalId={p.approvalId} />
          </fieldset>
        ))}
    </div>
  );
}
