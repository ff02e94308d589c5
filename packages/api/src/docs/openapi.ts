import { type AnyTRPCRouter, type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { appErrorCodes, genericAppCodes } from '../lib/errors';
import type { AuthLevel } from '../trpc';
import { describeProcedures, type ProcedureDoc } from './procedures';
import type { JsonSchema, SchemaComponents } from './schema';

export interface OpenApiOptions {
  title?: string;
  version?: string;
  /** Most calls one HTTP batch may carry (told to readers; the server enforces it). */
  maxBatchSize?: number;
}

/** An OpenAPI 3.1 document, as plain JSON. */
export type OpenApiDocument = JsonSchema & { openapi: '3.1.0'; paths: Record<string, JsonSchema> };

/** Human wording of an auth level (also the operation summary in the reference). */
export function describeAuth(auth: AuthLevel | null): string {
  if (auth === null) return 'Unknown: built without the procedure builders of trpc.ts';
  if (auth === 'public') return 'Public: no token needed';
  if (auth === 'user') return 'Any signed-in user';
  if (auth === 'admin') return 'Platform admins only';
  return `Project members with the ${auth.project} role or higher`;
}

/** `RouterOutputs['projects']['members']['list']`: where a procedure's output is typed. */
function outputTypeName(path: string): string {
  return `RouterOutputs${path
    .split('.')
    .map((p) => `['${p}']`)
    .join('')}`;
}

const errorEnvelope: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'code', 'data'],
      properties: {
        message: { type: 'string', description: 'For people; never contains internals.' },
        code: { type: 'integer', description: 'JSON-RPC 2.0 error number.' },
        data: {
          type: 'object',
          required: ['code', 'httpStatus', 'appCode'],
          properties: {
            code: { type: 'string', examples: ['NOT_FOUND'], description: 'tRPC error code.' },
            httpStatus: { type: 'integer' },
            path: { type: 'string', description: 'The procedure that failed.' },
            appCode: {
              type: 'string',
              examples: ['auth.invalid_credentials'],
              description: 'Stable dotted code to branch on; see "Error codes" above.',
            },
            fieldErrors: {
              type: 'object',
              additionalProperties: { type: 'array', items: { type: 'string' } },
              description: 'Bad input only: messages per input field.',
            },
            retryAfterMs: { type: 'integer', description: '`rate_limited` only.' },
          },
        },
      },
    },
  },
};

const errorResponses: Record<string, string> = {
  '400': 'Invalid or malformed input (`fieldErrors` says which field).',
  '401':
    'No valid access token or API key (`auth.unauthenticated`, `auth.session_ended`, `auth.key_revoked`, `auth.key_expired`, ...).',
  '403':
    'Signed in but not allowed (`auth.admin_required`, `projects.role_insufficient`, `auth.key_not_allowed`).',
  '404': 'Not found, or in a project the caller is not a member of: the two look the same.',
  '429': 'Too many calls from this address (`rate_limited`, with `retryAfterMs`).',
};

function errorStatuses(doc: ProcedureDoc): string[] {
  const statuses: string[] = [];
  if (doc.inputKind !== 'none') statuses.push('400');
  if (doc.auth !== 'public') statuses.push('401');
  if (doc.auth === 'admin' || typeof doc.auth === 'object') statuses.push('403');
  if (doc.auth !== null && typeof doc.auth === 'object') statuses.push('404');
  statuses.push('429');
  return statuses;
}

function operation(doc: ProcedureDoc): JsonSchema {
  const outputNote = doc.output
    ? ''
    : `\n\n**Output:** not validated at run time, so not in this document: it is typed as ` +
      `\`${outputTypeName(doc.path)}\` in \`@smartspace/client\`.`;
  const transport =
    doc.kind === 'subscription'
      ? '\n\n**Transport:** WebSocket on `/trpc` (see "Subscriptions" above); each event ' +
        'arrives as `{ id, result: { type: "data", id: <eventId>, data } }`.'
      : '';
  const responses: JsonSchema = {};
  const data = doc.output ?? { description: `\`${outputTypeName(doc.path)}\`` };
  responses['200'] =
    doc.kind === 'subscription'
      ? { description: 'Events, over the WebSocket.' }
      : {
          description: 'Success.',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['result'],
                properties: {
                  result: { type: 'object', required: ['data'], properties: { data } },
                },
              },
            },
          },
        };
  for (const status of errorStatuses(doc)) {
    responses[status] = { $ref: `#/components/responses/Error${status}` };
  }
  responses.default = { $ref: '#/components/responses/Error' };

  const op: JsonSchema = {
    operationId: doc.path,
    tags: [doc.path.split('.')[0]],
    summary: describeAuth(doc.auth),
    description: `${doc.description ? `${doc.description}\n\n` : ''}**Who:** ${describeAuth(doc.auth)}.${doc.auth === 'public' ? '' : ` **API keys:** ${doc.apiKeys ? 'accepted' : 'refused'}.`}${transport}${outputNote}`,
    security: doc.auth === 'public' ? [] : [{ bearerAuth: [] }],
    'x-trpc-path': doc.path,
    'x-trpc-kind': doc.kind,
    'x-trpc-auth': doc.auth,
    'x-api-keys': doc.apiKeys,
    responses,
  };
  if (doc.input && doc.kind === 'mutation') {
    const type = doc.inputKind === 'form-data' ? 'multipart/form-data' : 'application/json';
    // An input with a default (every field optional) may be left out entirely.
    const required = !('default' in doc.input);
    op.requestBody = { required, content: { [type]: { schema: doc.input } } };
  } else if (doc.input) {
    op.parameters = [
      {
        name: 'input',
        in: 'query',
        required: Array.isArray(doc.input.required) && doc.input.required.length > 0,
        description: 'The input as JSON, URL-encoded.',
        content: { 'application/json': { schema: doc.input } },
      },
    ];
  }
  return op;
}

const httpStatusOf = (code: TRPC_ERROR_CODE_KEY) =>
  getHTTPStatusCodeFromError(new TRPCError({ code }));

function errorCodeTable(): string {
  const rows = Object.entries(appErrorCodes).map(
    ([appCode, code]) => `| \`${appCode}\` | ${code} | ${httpStatusOf(code)} |`,
  );
  // Errors tRPC raises itself (bad input, unknown procedure) carry these generic codes.
  const generic = Object.entries(genericAppCodes)
    .filter(([, appCode]) => !(appCode in appErrorCodes))
    .map(
      ([code, appCode]) =>
        `| \`${appCode}\` | ${code} | ${httpStatusOf(code as TRPC_ERROR_CODE_KEY)} |`,
    );
  const table = ['| appCode | code | HTTP |', '|---|---|---|', ...rows, ...generic].join('\n');
  // Folded: the reference renders this intro above the procedures.
  return `<details><summary>Error codes (${rows.length + generic.length})</summary>\n\n${table}\n\n</details>`;
}

function intro(maxBatchSize: number): string {
  return `Generated from the router at start-up: every procedure, who may call it, and its input.
Typed clients need none of this: \`@smartspace/client\` exports \`RouterInputs\` and \`RouterOutputs\`.

## Calling a procedure over HTTP
- **Queries:** \`GET /trpc/<path>?input=<URL-encoded JSON>\` (omit \`input\` when there is none).
- **Mutations:** \`POST /trpc/<path>\` with the input as a JSON body (\`content-type: application/json\`).
- **Success:** \`{ "result": { "data": <output> } }\`.
- **Batches:** \`/trpc/<path1>,<path2>?batch=1\` with input \`{ "0": <input1>, "1": <input2> }\`;
  the answer is an array in the same order. At most ${maxBatchSize} calls per batch.
- **Auth:** \`Authorization: Bearer <accessToken>\` from \`auth.register\`, \`auth.login\` or
  \`auth.refresh\`. Access tokens are short-lived; refresh before they expire.
- **API keys** (for tools and scripts): \`Authorization: Bearer ssk_…\` from \`apiKeys.create\`.
  A key acts in its one project with its role (never above its creator's); each procedure
  says whether keys are accepted. Revoked, expired and unknown keys answer 401 with
  \`auth.key_revoked\`, \`auth.key_expired\` and \`auth.unauthenticated\`.
- **Money** is a decimal string with six digits (\`"12.500000"\` USDC).

## Subscriptions
Over WebSocket (tRPC's protocol): connect to \`/trpc?connectionParams=1\`, send
\`{ "method": "connectionParams", "data": { "token": "<accessToken or API key>" } }\`, then
\`{ "id": 1, "method": "subscription", "params": { "path": "<path>", "input": {...} } }\`.
Pass \`lastEventId\` to resume after a reconnect.

## Errors
\`{ "error": { "message", "code", "data": { "code", "httpStatus", "path", "appCode", "fieldErrors"? } } }\`.
Branch on \`data.appCode\`, never on the message.

${errorCodeTable()}`;
}

/** OpenAPI 3.1 description of every procedure of `router`, served at GET /docs/openapi.json. */
export function openApiDocument(router: AnyTRPCRouter, opts: OpenApiOptions = {}): OpenApiDocument {
  const schemas: SchemaComponents = {};
  const procedures = describeProcedures(router, schemas);
  const paths: Record<string, JsonSchema> = {};
  for (const doc of procedures) {
    const method = doc.kind === 'mutation' ? 'post' : 'get';
    paths[`/trpc/${doc.path}`] = { [method]: operation(doc) };
  }
  const responses: JsonSchema = {
    Error: {
      description: 'Any other error, in the same envelope.',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/TRPCError' } } },
    },
  };
  for (const [status, description] of Object.entries(errorResponses)) {
    responses[`Error${status}`] = {
      description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/TRPCError' } } },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: opts.title ?? 'SmartSpace API',
      version: opts.version ?? '0.1.0',
      description: intro(opts.maxBatchSize ?? 20),
    },
    tags: [...new Set(procedures.map((p) => p.path.split('.')[0]))].map((name) => ({ name })),
    paths,
    components: {
      schemas: { ...schemas, TRPCError: errorEnvelope },
      responses,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description:
            'The access token (a JWT) from auth.login, auth.register or auth.refresh, or a project API key (ssk_…) from apiKeys.create.',
        },
      },
    },
  };
}
