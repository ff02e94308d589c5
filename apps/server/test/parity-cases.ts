/**
 * HTTP calls replayed through both tRPC mounts by parity.test.ts: every shape of request the
 * fast path answers itself, and the ones it hands to tRPC's own handler.
 */
export interface ParityCase {
  name: string;
  /** After the mount: `users.me`, `a,b?batch=1&input=...`. */
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string | (() => FormData);
  /** Sends the signed-in user's bearer token. */
  auth?: boolean;
  /**
   * A refusal of the whole request, before any call: tRPC's handler sends its JSON body
   * without a content type (so `text/plain`), the fast path labels it `application/json`.
   */
  wholeRequestRefused?: true;
}

export interface ParityFixture {
  projectId: string;
}

const json = { 'content-type': 'application/json' };
const q = (input: unknown) => encodeURIComponent(JSON.stringify(input));
const paths = (path: string, n: number) => Array.from({ length: n }, () => path).join(',');

function upload(projectId: string): FormData {
  const fd = new FormData();
  fd.set('projectId', projectId);
  fd.set('file', new Blob(['parity']), 'parity.txt');
  return fd;
}

export function parityCases({ projectId }: ParityFixture): ParityCase[] {
  const project = q({ projectId });
  return [
    // Queries
    { name: 'query without a token', url: 'users.me' },
    { name: 'query', url: 'users.me', auth: true },
    { name: 'query with input', url: `projects.get?input=${project}`, auth: true },
    { name: 'query with an empty input', url: `projects.list?input=${q({})}`, auth: true },
    { name: 'query with bad fields', url: `projects.get?input=${q({ projectId: 1 })}`, auth: true },
    { name: 'query with malformed JSON', url: 'projects.list?input=%7Bbroken', auth: true },
    { name: 'unknown procedure', url: 'nope.nothing' },
    { name: 'unknown nested procedure', url: 'users.me.deeper' },
    // Mutations
    {
      name: 'mutation',
      url: 'projects.create',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'Parity' }),
      auth: true,
    },
    {
      name: 'mutation with a charset',
      url: 'users.update',
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ name: 'Parity' }),
      auth: true,
    },
    {
      name: 'mutation with bad fields',
      url: 'auth.register',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'nope', password: 'x', name: 'n' }),
    },
    {
      name: 'mutation with malformed JSON',
      url: 'auth.register',
      method: 'POST',
      headers: json,
      body: '{"email": ',
    },
    { name: 'mutation with no body', url: 'auth.register', method: 'POST', headers: json },
    {
      name: 'mutation refused by its middleware',
      url: 'projects.create',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'No token' }),
    },
    // Wrong methods
    { name: 'GET on a mutation', url: 'auth.register' },
    { name: 'POST on a query', url: 'users.me', method: 'POST', headers: json, body: '{}' },
    { name: 'POST on an unknown procedure', url: 'nope', method: 'POST', headers: json },
    // Batches
    {
      name: 'query batch with mixed results',
      url: `users.me,projects.get,nope.nothing,projects.get?batch=1&input=${q({
        1: { projectId },
        3: { projectId: 'not-a-uuid' },
      })}`,
      auth: true,
    },
    { name: 'query batch without input', url: 'users.me,users.me?batch=1', auth: true },
    {
      name: 'query batch with a mutation in it',
      wholeRequestRefused: true,
      url: 'users.me,auth.register?batch=1',
    },
    {
      name: 'mutation batch with mixed results',
      wholeRequestRefused: true,
      url: 'projects.create,auth.register,users.me,auth.login?batch=1',
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        0: { name: 'Batched' },
        1: { email: 'bad' },
        3: { email: 'nobody@example.com', password: 'wrong password here' },
      }),
      auth: true,
    },
    {
      name: 'mutation batch with malformed JSON',
      url: 'projects.create,projects.create?batch=1',
      method: 'POST',
      headers: json,
      body: '{"0": {',
      auth: true,
    },
    { name: 'batch whose input is not an object', url: `users.me?batch=1&input=${q(5)}` },
    {
      name: 'batch with input whose input is not an object',
      url: `users.me,projects.list?batch=1&input=${q('text')}`,
      auth: true,
    },
    {
      name: 'malformed JSON read only by calls that take input',
      url: 'users.me,projects.list?batch=1&input=%7Bbroken',
      auth: true,
    },
    { name: 'batch whose input is an array', url: `users.me?batch=1&input=${q([{}])}` },
    { name: 'batch of the maximum size', url: `${paths('users.me', 20)}?batch=1&input={}` },
    {
      name: 'oversized batch',
      wholeRequestRefused: true,
      url: `${paths('users.me', 21)}?batch=1&input={}`,
    },
    {
      name: 'a thousand commas',
      wholeRequestRefused: true,
      url: `${'a,'.repeat(1000)}a?batch=1&input={}`,
    },
    { name: 'batch=0 is not a batch', url: 'users.me?batch=0', auth: true },
    // Bodies Fastify refuses before tRPC runs
    {
      name: 'wrong content type',
      url: 'auth.register',
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    },
    {
      name: 'body over the limit',
      url: 'auth.register',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'x'.repeat(10_000) }),
    },
    // Streamed (JSONL) batches and FormData: the fast path hands these to tRPC's handler
    {
      name: 'JSONL batch',
      url: `users.me,nope?batch=1&input=${q({})}`,
      headers: { 'trpc-accept': 'application/jsonl' },
      auth: true,
    },
    {
      name: 'JSONL asked for in accept',
      url: `users.me?batch=1&input=${q({})}`,
      headers: { accept: 'application/jsonl' },
      auth: true,
    },
    {
      name: 'FormData upload',
      url: 'files.upload',
      method: 'POST',
      body: () => upload(projectId),
      auth: true,
    },
    {
      name: 'FormData upload without a token',
      url: 'files.upload',
      method: 'POST',
      body: () => upload(projectId),
    },
    {
      name: 'FormData on a query',
      url: 'users.me',
      method: 'POST',
      body: () => upload(projectId),
      auth: true,
    },
  ];
}
