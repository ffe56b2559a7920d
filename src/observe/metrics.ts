// The agent's Prometheus metrics: every name the seed README documents, plus process metrics
// and a few the seed lacks (stale serving, provider health). Label values are secret NAMES,
// provider names, container names and outcomes; never a value. One registry per agent,
// created by its composition root.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats } from '../agent/cache.ts';

export interface Metrics {
  registry: Registry;
  rotationDuration: Histogram<'secret' | 'status'>;
  rotationTotal: Counter<'secret' | 'status'>;
  rotationHealthCheckDuration: Histogram<'secret'>;
  eventQueueSize: Gauge;
  eventQueueDrops: Counter<'reason'>;
  eventDebounceBatches: Counter;
  eventStreamReconnects: Counter;
  eventHandleDuration: Histogram<'action'>;
  providerRequestDuration: Histogram<'provider' | 'method'>;
  providerErrors: Counter<'provider' | 'error'>;
  providerUp: Gauge<'provider'>;
  containerRotationDuration: Histogram<'container'>;
  containerRenameFailures: Counter;
  apiRequests: Counter<'route' | 'status'>;
}

export function createMetrics(options: { version: string; cacheStats: () => CacheStats }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dso_' });
  const seconds = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
  const m: Metrics = {
    registry,
    rotationDuration: new Histogram({ name: 'dso_rotation_duration_seconds', help: 'Time to rotate a secret across its containers', labelNames: ['secret', 'status'], buckets: seconds, registers: [registry] }),
    rotationTotal: new Counter({ name: 'dso_rotation_total', help: 'Rotations by outcome (success, failure, rollback)', labelNames: ['secret', 'status'], registers: [registry] }),
    rotationHealthCheckDuration: new Histogram({ name: 'dso_rotation_health_check_duration_seconds', help: 'Time for a rotated container to become healthy', labelNames: ['secret'], buckets: seconds, registers: [registry] }),
    eventQueueSize: new Gauge({ name: 'dso_event_queue_size', help: 'Events waiting in the queue', registers: [registry] }),
    eventQueueDrops: new Counter({ name: 'dso_event_queue_drops_total', help: 'Events dropped, by reason', labelNames: ['reason'], registers: [registry] }),
    eventDebounceBatches: new Counter({ name: 'dso_event_debounce_batches_total', help: 'Batches of containers released together by the debounce window', registers: [registry] }),
    eventStreamReconnects: new Counter({ name: 'dso_event_stream_reconnects_total', help: 'Reconnections to the Docker event stream after it ended or failed', registers: [registry] }),
    eventHandleDuration: new Histogram({ name: 'dso_event_handle_seconds', help: 'Time from a Docker event (the engine\'s timestamp) to the agent having handled it', labelNames: ['action'], buckets: seconds, registers: [registry] }),
    providerRequestDuration: new Histogram({ name: 'dso_provider_request_duration_seconds', help: 'Provider call latency', labelNames: ['provider', 'method'], buckets: seconds, registers: [registry] }),
    providerErrors: new Counter({ name: 'dso_provider_errors_total', help: 'Provider errors, by kind', labelNames: ['provider', 'error'], registers: [registry] }),
    providerUp: new Gauge({ name: 'dso_provider_up', help: '1 when the provider\'s last call reached its backend', labelNames: ['provider'], registers: [registry] }),
    containerRotationDuration: new Histogram({ name: 'dso_container_rotation_duration_seconds', help: 'Time to rotate one container', labelNames: ['container'], buckets: seconds, registers: [registry] }),
    containerRenameFailures: new Counter({ name: 'dso_container_rename_failures_total', help: 'Failed renames during blue-green swaps', registers: [registry] }),
    apiRequests: new Counter({ name: 'dso_api_requests_total', help: 'Agent API requests, by route and status', labelNames: ['route', 'status'], registers: [registry] }),
  };
  // Cache figures are read from the cache when Prometheus scrapes, so they are never out of date.
  const stat = (name: string, help: string, pick: (s: CacheStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(options.cacheStats()));
      },
    });
  stat('dso_cache_size_bytes', 'Bytes of secret values held in the cache', (s) => s.bytes);
  stat('dso_cache_entries', 'Values held in the cache', (s) => s.entries);
  new Counter({
    name: 'dso_cache_hits_total',
    help: 'Reads served from the cache',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.cacheStats().hits);
    },
  });
  new Counter({
    name: 'dso_cache_misses_total',
    help: 'Reads that went to a provider',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.cacheStats().misses);
    },
  });
  new Counter({
    name: 'dso_cache_stale_served_total',
    help: 'Reads served past their ttl because the provider was down',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(options.cacheStats().staleServed);
    },
  });
  new Gauge({ name: 'dso_build_info', help: 'The running DSO version', labelNames: ['version'], registers: [registry] }).set({ version: options.version }, 1);
  return m;
}
