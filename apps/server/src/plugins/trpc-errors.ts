/**
 * Errors raised by Fastify before tRPC runs (body too large, wrong content type, rate limit)
 * still reach clients in the tRPC error envelope, with an appCode, so a client handles one
 * shape for everything under /trpc.
 */
const rpcCodes: Record<number, [number, string, string]> = {
  400: [-32600, 'BAD_REQUEST', 'request.invalid'],
  404: [-32004, 'NOT_FOUND', 'request.not_found'],
  405: [-32005, 'METHOD_NOT_SUPPORTED', 'request.method_not_supported'],
  408: [-32008, 'TIMEOUT', 'request.timeout'],
  413: [-32013, 'PAYLOAD_TOO_LARGE', 'request.too_large'],
  // tRPC has no code of its own for it: a bad request, with the precise HTTP status.
  414: [-32600, 'BAD_REQUEST', 'request.url_too_long'],
  415: [-32015, 'UNSUPPORTED_MEDIA_TYPE', 'request.unsupported_media_type'],
  429: [-32029, 'TOO_MANY_REQUESTS', 'rate_limited'],
  503: [-32603, 'SERVICE_UNAVAILABLE', 'service.unavailable'],
};

export function trpcErrorBody(httpStatus: number, message: string) {
  const [code, name, appCode] = rpcCodes[httpStatus] ?? [
    -32603,
    'INTERNAL_SERVER_ERROR',
    'internal',
  ];
  return { error: { message, code, data: { code: name, httpStatus, appCode } } };
}
