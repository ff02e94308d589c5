import { CloseCode, ConfigError, createApi, loadConfig } from '@smartspace/api';
import { buildApp } from './app';
import { createLogger, logDestination } from './logger';
import { createMetrics } from './metrics';
import { startTracing } from './tracing';

const SHUTDOWN_GRACE_MS = 15_000;
const SOCKET_DRAIN_MS = 1_000;

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  const logger = createLogger(config.logLevel, await logDestination(config.nodeEnv));
  const tracing =
    config.otlpEndpoint || config.otlpTracesEndpoint
      ? startTracing({ serviceName: config.otelServiceName })
      : null;
  const metrics = createMetrics();
  const api = await createApi({
    config,
    log: logger,
    observe: {
      gatewayCall: metrics.observeGatewayCall,
      runStep: metrics.observeRunStep,
      runFinished: metrics.observeRunFinished,
      eventDelivered: metrics.observeEventDelivered,
    },
  });
  const app = await buildApp({ api, logger, metrics });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    try {
      // Ask socket clients to reconnect (to another instance behind the balancer), give
      // them a moment, then stop accepting and drain HTTP requests.
      api.connections.announceRestart();
      await new Promise((r) => setTimeout(r, SOCKET_DRAIN_MS));
      api.connections.closeAll(CloseCode.serviceRestart, 'server restarting');
      await app.close();
      // Replies still streaming here are stored as interrupted before the database closes.
      await api.close();
      // Sends the spans still batched.
      await tracing?.shutdown();
      logger.info('shut down cleanly');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ host: config.host, port: config.port });
  logger.info(
    { database: api.database.kind === 'pglite' ? `embedded (${config.dataDir})` : 'postgres' },
    'SmartSpace is ready',
  );
}

main().catch((err) => {
  console.error('SmartSpace failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
