// What the agent does for its callers, apart from how they reach it: resolve secret references
// through the cache and the provider hosts, and describe its own state. The HTTP API
// (src/agent/api.ts) is a thin layer over this.
import type { SecretId } from '../compose/references.ts';
import type { DsoConfig } from '../config/load.ts';
import { DsoError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import { checkProviders, type ProviderCheck } from '../providers/check.ts';
import { ProviderError } from '../providers/contract.ts';
import type { ProviderSet } from '../providers/resolver.ts';
import { selectKey } from '../providers/select-key.ts';
import { SecretBytes } from '../secrets/secret-bytes.ts';
import type { Fingerprinter } from '../rotation/fingerprint.ts';
import type { SecretCache } from './cache.ts';

export interface ResolvedValue {
  id: string;
  value: SecretBytes;
  version?: string;
  /** The agent's keyed fingerprint of the value (src/rotation/fingerprint.ts). */
  fingerprint?: string;
  stale: boolean;
}

/** What rotation adds to status: the queue and the rotations under way or just finished. */
export interface RotationStatus {
  queue: { depth: number; capacity: number; drops: number };
  pendingRotations: Array<{ rotation: string; container: string; strategy: string; step: string; status: string; startedAt: string; secrets: string[]; reason?: string }>;
  recentRotations: Array<{ rotation: string; container: string; strategy: string; status: string; finishedAt: string; durationMs?: number; downtimeMs?: number; reason?: string }>;
}

export interface ResolveFailure {
  id: string;
  kind: string;
  message: string;
}

export interface ProviderHealth {
  name: string;
  kind: string;
  isolation: string;
  state: string;
  restarts: number;
  /** The last call reached the backend (or none was made yet and the provider started). */
  healthy: boolean;
  lastContact?: string;
  /** Why the last call failed to reach the backend, while it is unhealthy. */
  lastError?: string;
}

export class AgentService {
  readonly startedAt = Date.now();
  readonly #lastContact = new Map<string, number>();
  /** Per provider, why the backend could not be reached on the last call; absent once it answers. */
  readonly #down = new Map<string, string>();

  constructor(
    readonly config: DsoConfig,
    readonly providers: ProviderSet,
    readonly cache: SecretCache,
    readonly metrics: Metrics,
    readonly log: Logger,
    readonly version: string,
    readonly fingerprints?: Fingerprinter,
  ) {}

  /** Set by the rotator when the agent rotates (src/agent/rotator.ts). */
  rotationStatus?: () => RotationStatus;

  /** Resolves each id; every id ends as a value or a failure, never both. */
  async resolve(ids: SecretId[], options: { fresh?: boolean } = {}): Promise<{ values: ResolvedValue[]; failures: ResolveFailure[] }> {
    const values: ResolvedValue[] = [];
    const failures: ResolveFailure[] = [];
    await Promise.all(
      ids.map(async (id) => {
        try {
          if (id.provider === undefined || !this.providers.has(id.provider)) {
            throw new ProviderError('config', id.provider === undefined ? 'the agent resolves provider references only (PROVIDER:PATH)' : `provider "${id.provider}" is not configured in ${this.config.path}`);
          }
          const fetchKey = `${id.provider}:${id.path}${id.version === undefined ? '' : `?version=${id.version}`}`;
          const served = await this.cache.get(fetchKey, () => this.#fetch(id), options);
          let value = served.value;
          if (id.key !== undefined) {
            try {
              value = new SecretBytes(selectKey(served.value.expose(), id.key));
            } finally {
              served.value.wipe();
            }
          }
          const fingerprint = this.fingerprints?.of(value.expose());
          values.push({ id: id.id, value, ...(served.version === undefined ? {} : { version: served.version }), ...(fingerprint ? { fingerprint } : {}), stale: served.stale });
          if (served.stale) this.log.warn('Served a cached value: the provider is unavailable', { secret: id.id, provider: id.provider, age_ms: served.ageMs });
        } catch (e) {
          const kind = e instanceof ProviderError ? e.kind : 'internal';
          const message = e instanceof ProviderError || e instanceof DsoError ? e.message : 'unexpected error';
          failures.push({ id: id.id, kind, message });
          this.log.warn('Could not resolve a secret', { secret: id.id, provider: id.provider, error: kind, reason: message });
        }
      }),
    );
    return { values, failures };
  }

  async #fetch(id: SecretId): Promise<{ value: SecretBytes; version?: string }> {
    const host = this.providers.host(id.provider!);
    const started = performance.now();
    try {
      const got = await host.get(id.path, id.version === undefined ? {} : { version: id.version });
      this.#lastContact.set(id.provider!, Date.now());
      this.#down.delete(id.provider!);
      this.metrics.providerUp.set({ provider: id.provider! }, 1);
      return got;
    } catch (e) {
      const kind = e instanceof ProviderError ? e.kind : 'internal';
      this.metrics.providerErrors.inc({ provider: id.provider!, error: kind });
      // The backend answered something that means something (not found, denied): it is up.
      // Otherwise (unreachable, slow, garbage) it is not.
      if (e instanceof ProviderError && !e.backendFault && e.kind !== 'auth') {
        this.#lastContact.set(id.provider!, Date.now());
        this.#down.delete(id.provider!);
      } else {
        this.metrics.providerUp.set({ provider: id.provider! }, 0);
        this.#down.set(id.provider!, `${kind}: ${e instanceof ProviderError ? e.message : 'unexpected error'}`);
      }
      throw e;
    } finally {
      this.metrics.providerRequestDuration.observe({ provider: id.provider!, method: 'get' }, (performance.now() - started) / 1000);
    }
  }

  /** Starts (logs in to) every configured provider; the answer says which credentials work. */
  async checkProviders(): Promise<ProviderCheck[]> {
    const results = await checkProviders(this.providers);
    for (const r of results) {
      this.metrics.providerUp.set({ provider: r.name }, r.ok ? 1 : 0);
      if (r.ok) {
        this.#lastContact.set(r.name, Date.now());
        this.#down.delete(r.name);
      } else {
        this.#down.set(r.name, `${r.error?.kind ?? 'internal'}: ${r.error?.message ?? 'unexpected error'}`);
      }
      if (!r.ok) this.log.warn('A provider could not start', { provider: r.name, error: r.error?.kind, reason: r.error?.message });
    }
    return results;
  }

  providerHealth(): ProviderHealth[] {
    return [...this.config.providers.values()].map((p) => {
      const started = this.providers.hosts().find((h) => h.name === p.name)?.status();
      const last = this.#lastContact.get(p.name);
      const down = this.#down.get(p.name);
      return {
        name: p.name,
        kind: p.kind,
        isolation: p.isolation,
        state: started?.state ?? 'stopped',
        restarts: started?.restarts ?? 0,
        healthy: down === undefined,
        ...(last === undefined ? {} : { lastContact: new Date(last).toISOString() }),
        ...(down === undefined ? {} : { lastError: down }),
      };
    });
  }

  status() {
    const cache = this.cache.stats();
    const reads = cache.hits + cache.misses;
    return {
      mode: 'cloud',
      version: this.version,
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      config: this.config.path,
      providers: this.providerHealth(),
      cache: { ...cache, hitRate: reads === 0 ? 0 : cache.hits / reads, ttlSeconds: this.config.agent.cache.ttl / 1000, maxBytes: this.config.agent.cache.max_cache_size },
      ...(this.rotationStatus?.() ?? { queue: { depth: 0, capacity: this.config.agent.watch.queue_size, drops: 0 }, pendingRotations: [], recentRotations: [] }),
    };
  }

  async close(): Promise<void> {
    await this.providers.close();
    this.cache.clear();
  }
}
