// The agent's secret cache: values as bytes, fresh for `ttl`, bounded by a total size (least
// recently used evicted first) and a per-value size, zeroed when evicted, replaced or cleared.
// When a provider is down, a value past its ttl is still served for up to `max_stale`, and the
// caller is told it is stale.
import { ProviderError } from '../providers/contract.ts';
import { SecretBytes } from '../secrets/secret-bytes.ts';

export interface CacheOptions {
  ttlMs: number;
  maxBytes: number;
  maxSecretBytes: number;
  maxStaleMs: number;
  now?: () => number;
  /** Told of every value kept and dropped (the log redactor learns what to scrub). */
  onStore?(id: string, value: Uint8Array): void;
  onDrop?(id: string): void;
}

export interface Fetched {
  /** Owned by the cache once given. */
  value: SecretBytes;
  version?: string;
}

export interface Served {
  /** A copy the caller owns and wipes. */
  value: SecretBytes;
  version?: string;
  /** Whether this came from the cache rather than the provider just now. */
  cached: boolean;
  /** Served past its ttl because the provider failed. */
  stale: boolean;
  ageMs: number;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  staleServed: number;
  evictions: number;
}

interface Entry {
  value: SecretBytes;
  version?: string;
  fetchedAt: number;
}

export class SecretCache {
  readonly #o: CacheOptions;
  readonly #now: () => number;
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #stats = { hits: 0, misses: 0, staleServed: 0, evictions: 0 };

  constructor(options: CacheOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The value for `id`: from the cache while fresh, else from `fetch` (and cached). When `fetch`
   * fails without a usable answer (backend down, timeout, crash, garbage) and the cached value is within
   * max_stale, the cached value is served, marked stale. Other failures are thrown.
   */
  async get(id: string, fetch: () => Promise<Fetched>, options: { fresh?: boolean } = {}): Promise<Served> {
    const entry = this.#entries.get(id);
    const now = this.#now();
    // fresh: the provider's current value or the provider's error (a drift check, a rotation):
    // the cache is updated, never read.
    if (options.fresh) {
      const fetched = await fetch();
      this.#checkSize(fetched);
      const served = this.#serve({ value: fetched.value, ...(fetched.version === undefined ? {} : { version: fetched.version }), fetchedAt: now }, false, false, now);
      this.put(id, fetched);
      return served;
    }
    if (entry && now - entry.fetchedAt < this.#o.ttlMs) {
      this.#stats.hits++;
      this.#touch(id, entry);
      return this.#serve(entry, true, false, now);
    }
    this.#stats.misses++;
    let fetched: Fetched;
    try {
      fetched = await fetch();
    } catch (e) {
      const current = this.#entries.get(id);
      const backendFault = e instanceof ProviderError && e.backendFault;
      if (backendFault && current && now - current.fetchedAt < this.#o.ttlMs + this.#o.maxStaleMs) {
        this.#stats.staleServed++;
        this.#touch(id, current);
        return this.#serve(current, true, true, now);
      }
      throw e;
    }
    this.#checkSize(fetched);
    // The copy for the caller is made before the cache takes (and may drop) the value.
    const served = this.#serve({ value: fetched.value, ...(fetched.version === undefined ? {} : { version: fetched.version }), fetchedAt: this.#now() }, false, false, this.#now());
    this.put(id, fetched);
    return served;
  }

  /** Stores a value (taking ownership), replacing and zeroing any older one. */
  put(id: string, fetched: Fetched): void {
    this.#checkSize(fetched);
    this.delete(id);
    while (this.#bytes + fetched.value.length > this.#o.maxBytes && this.#entries.size > 0) {
      const oldest = this.#entries.keys().next().value as string;
      this.delete(oldest);
      this.#stats.evictions++;
    }
    if (fetched.value.length > this.#o.maxBytes) {
      // Larger than the whole cache: served, never kept.
      fetched.value.wipe();
      return;
    }
    this.#entries.set(id, { value: fetched.value, ...(fetched.version === undefined ? {} : { version: fetched.version }), fetchedAt: this.#now() });
    this.#bytes += fetched.value.length;
    this.#o.onStore?.(id, fetched.value.expose());
  }

  /** Forgets `id`, zeroing its value. */
  delete(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#bytes -= entry.value.length;
    this.#o.onDrop?.(id);
    entry.value.wipe();
  }

  /** Zeroes and forgets everything (shutdown). */
  clear(): void {
    for (const id of [...this.#entries.keys()]) this.delete(id);
  }

  /** Drops entries past ttl + max_stale, which can no longer be served (call it periodically). */
  sweep(): number {
    const now = this.#now();
    let n = 0;
    for (const [id, e] of this.#entries) {
      if (now - e.fetchedAt >= this.#o.ttlMs + this.#o.maxStaleMs) {
        this.delete(id);
        n++;
      }
    }
    return n;
  }

  stats(): CacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes, ...this.#stats };
  }

  #checkSize(fetched: Fetched): void {
    if (fetched.value.length > this.#o.maxSecretBytes) {
      const size = fetched.value.length;
      fetched.value.wipe();
      throw new ProviderError('too_large', `the value is ${size} bytes, over max_secret_size (${this.#o.maxSecretBytes})`);
    }
  }

  #touch(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#entries.set(id, entry);
  }

  #serve(entry: Entry, cached: boolean, stale: boolean, now: number): Served {
    return {
      value: SecretBytes.copyOf(entry.value.expose()),
      ...(entry.version === undefined ? {} : { version: entry.version }),
      cached,
      stale,
      ageMs: Math.max(0, now - entry.fetchedAt),
    };
  }
}
