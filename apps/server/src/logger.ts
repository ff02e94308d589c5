import { type DestinationStream, pino } from 'pino';

/**
 * Structured logs. Request URLs are logged without their query string (tRPC GET inputs live
 * there) and credentials are redacted wherever they might appear.
 */
export function createLogger(level: string, destination?: DestinationStream) {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          '*.password',
          '*.currentPassword',
          '*.newPassword',
          '*.refreshToken',
          '*.accessToken',
          '*.token',
          '*.apiKey',
          '*.awsAccessKey',
          '*.awsSecretKey',
          'modelRoutes',
          '*.modelRoutes',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req(req: { method: string; url: string; id: string; ip?: string }) {
          return { id: req.id, method: req.method, url: req.url.split('?')[0], ip: req.ip };
        },
      },
    },
    destination,
  );
}

export type Logger = ReturnType<typeof createLogger>;

/**
 * Development on a terminal: readable lines (pino-pretty); anything else (production, pipes,
 * log collectors) gets one JSON object per line.
 */
export async function logDestination(nodeEnv: string): Promise<DestinationStream | undefined> {
  if (nodeEnv !== 'development' || !process.stdout.isTTY) return undefined;
  const { default: pretty } = await import('pino-pretty');
  return pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' });
}
