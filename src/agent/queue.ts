// The rotation event queue: work for containers whose secrets changed (or that need restoring),
// one entry per container however many events arrive for it, released once its events stop
// for a debounce window, and bounded. Pure logic on an injected clock; the owner sets one timer
// at nextReadyAt() and calls takeReady() when it fires.
//
// Overflow policy (the seed's "fixed size; drops on overflow"): when `capacity` containers are
// already pending, an event for another container is dropped, counted in
// dso_event_queue_drops_total{reason="full"}, and `reconcileNeeded` is set. The owner then runs a
// full reconcile once the queue has drained: a reconcile re-derives every needed rotation from
// the engine and the providers, so a dropped event delays work but loses none. Events for a
// container already pending are merged, never dropped.

export interface QueueEvent {
  containerId: string;
  /** The secret references (canonical ids) concerned; merged into the pending entry's. */
  refs: string[];
  /** Why: a secret changed, the container needs restoring, ... (the owner's vocabulary). */
  reason: string;
}

export interface QueueEntry {
  containerId: string;
  /** Every ref of the merged events, each once, in the order they first arrived. */
  refs: string[];
  /** Every reason of the merged events, each once, in the order they first arrived. */
  reasons: string[];
  /** How many events were merged into this entry. */
  events: number;
  /** Clock times of its first and last event. */
  firstAt: number;
  lastAt: number;
}

export type PushResult = 'queued' | 'merged' | 'dropped';

/** The three documented metrics, as prom-client has them (Metrics in src/observe/metrics.ts fits). */
export interface QueueMetrics {
  eventQueueSize: { set(value: number): void };
  eventQueueDrops: { inc(labels: { reason: string }): void };
  eventDebounceBatches: { inc(): void };
}

export interface QueueOptions {
  /** ms without a new event for a container before its entry is ready (agent.watch.debounce_window). */
  debounceMs: number;
  /** Distinct containers pending at most (agent.watch.queue_size, default 2000). */
  capacity: number;
  /**
   * The longest an entry waits after its first event, however often new events extend its
   * debounce (so a continuous storm cannot starve it). Default 10 × debounceMs.
   */
  maxWaitMs?: number;
  now?: () => number;
  metrics?: QueueMetrics;
}

interface Pending extends QueueEntry {
  refSet: Set<string>;
  readyAt: number;
}

export class RotationQueue {
  readonly #debounceMs: number;
  readonly #maxWaitMs: number;
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #metrics: QueueMetrics | undefined;
  // A Map iterates in insertion order: the order in which containers first arrived.
  readonly #pending = new Map<string, Pending>();
  /** The earliest readyAt, or undefined when it must be found again. */
  #next: number | undefined;
  #reconcileNeeded = false;

  constructor(options: QueueOptions) {
    if (!(options.capacity >= 1)) throw new RangeError('queue capacity must be at least 1');
    this.#debounceMs = Math.max(0, options.debounceMs);
    this.#maxWaitMs = Math.max(this.#debounceMs, options.maxWaitMs ?? 10 * this.#debounceMs);
    this.#capacity = options.capacity;
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics;
    this.#metrics?.eventQueueSize.set(0);
  }

  /** Containers pending. */
  get size(): number {
    return this.#pending.size;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Set when an event was dropped: run a full reconcile once the queue has drained. */
  get reconcileNeeded(): boolean {
    return this.#reconcileNeeded;
  }

  /** The owner calls this when it starts the reconcile (not when it ends: drops during it count again). */
  clearReconcileFlag(): void {
    this.#reconcileNeeded = false;
  }

  push(event: QueueEvent): PushResult {
    const now = this.#now();
    const entry = this.#pending.get(event.containerId);
    if (entry) {
      entry.events++;
      entry.lastAt = now;
      for (const ref of event.refs) {
        if (!entry.refSet.has(ref)) {
          entry.refSet.add(ref);
          entry.refs.push(ref);
        }
      }
      if (!entry.reasons.includes(event.reason)) entry.reasons.push(event.reason);
      const wasNext = entry.readyAt === this.#next;
      entry.readyAt = Math.min(now + this.#debounceMs, entry.firstAt + this.#maxWaitMs);
      // readyAt moves later (unless the clock went back): the cached minimum stays right unless
      // this entry held it.
      if (wasNext) this.#next = undefined;
      else if (this.#next !== undefined && entry.readyAt < this.#next) this.#next = entry.readyAt;
      return 'merged';
    }
    if (this.#pending.size >= this.#capacity) {
      this.#reconcileNeeded = true;
      this.#metrics?.eventQueueDrops.inc({ reason: 'full' });
      return 'dropped';
    }
    const refs = [...new Set(event.refs)];
    const added: Pending = { containerId: event.containerId, refs, refSet: new Set(refs), reasons: [event.reason], events: 1, firstAt: now, lastAt: now, readyAt: now + this.#debounceMs };
    this.#pending.set(event.containerId, added);
    if (this.#pending.size === 1 || (this.#next !== undefined && added.readyAt < this.#next)) this.#next = added.readyAt;
    this.#metrics?.eventQueueSize.set(this.#pending.size);
    return 'queued';
  }

  /**
   * Removes and returns the entries ready at `now`, in the order their containers first arrived.
   * A call that returns at least one entry is one debounce batch
   * (dso_event_debounce_batches_total counts those calls, not the entries in them).
   */
  takeReady(now: number = this.#now()): QueueEntry[] {
    const ready: QueueEntry[] = [];
    if (this.#pending.size === 0 || (this.nextReadyAt() ?? Infinity) > now) return ready;
    for (const [id, entry] of this.#pending) {
      if (entry.readyAt > now) continue;
      this.#pending.delete(id);
      const { refSet: _refs, readyAt: _at, ...out } = entry;
      ready.push(out);
    }
    this.#next = undefined;
    this.#metrics?.eventQueueSize.set(this.#pending.size);
    if (ready.length > 0) this.#metrics?.eventDebounceBatches.inc();
    return ready;
  }

  /** When the next entry becomes ready (a clock time), or undefined when nothing is pending. */
  nextReadyAt(): number | undefined {
    if (this.#pending.size === 0) return undefined;
    if (this.#next === undefined) {
      let min = Infinity;
      for (const entry of this.#pending.values()) if (entry.readyAt < min) min = entry.readyAt;
      this.#next = min;
    }
    return this.#next;
  }

  /** What is pending, oldest first, without taking it (for status). */
  pending(): QueueEntry[] {
    return [...this.#pending.values()].map(({ refSet: _refs, readyAt: _at, ...out }) => ({ ...out, refs: [...out.refs], reasons: [...out.reasons] }));
  }

  /** Forgets everything pending (the agent is stopping or reloading). */
  clear(): void {
    this.#pending.clear();
    this.#next = undefined;
    this.#metrics?.eventQueueSize.set(0);
  }
}
