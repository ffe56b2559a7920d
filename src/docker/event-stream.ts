// Follows the engine's event stream for as long as the agent runs: whenever the stream ends or
// fails (the engine restarted, its socket went away), it reconnects with capped exponential
// backoff and tells its owner, who runs a full reconcile: events during the gap may be lost for
// good (the engine replays only the few it still holds, and none from before its own restart).
import type { Logger } from '../observe/log.ts';
import type { Engine, EngineEvent } from './engine.ts';
import { abortableSleep, untilAborted } from '../abortable.ts';

export interface Connected {
  /** False for the first connection after start(), true for every one after. */
  reconnect: boolean;
  /** How long no stream was open: since start() for the first connection, else since the last one ended. */
  downtimeMs: number;
}

export interface EventStreamOptions {
  /** Only what the stream needs: events, and info for the engine's clock. */
  engine: Pick<Engine, 'events' | 'info'>;
  /** The engine's event filters (`{ type: ['container'], label: ['dso.managed=true'] }`). */
  filters: Record<string, string[]>;
  /**
   * Called for each event, in order. Kept synchronous on purpose: the engine drops events for a
   * subscriber that does not read, so the owner queues the event and returns.
   */
  onEvent(event: EngineEvent): void;
  /**
   * Called after every (re)connection, once the subscription is requested and the engine has
   * answered. Its promise, if any, is not awaited: events keep flowing while the owner reconciles.
   */
  onConnected(connected: Connected): void | Promise<void>;
  log: Logger;
  backoff?: {
    /** The first wait after a failure (500 ms). */
    initialMs?: number;
    /** The longest wait (30 s, the seed's "max 30s between attempts"). */
    maxMs?: number;
    /** A connection that lasted this long resets the backoff to initialMs (10 s). */
    stableMs?: number;
    /** Each wait is shortened by up to this fraction, at random, so agents do not retry in step (0.1). */
    jitter?: number;
  };
  now?: () => number;
  /** Resolves after `ms`, or early (never rejects) when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
  metrics?: { reconnects?: { inc(): void } };
}

/** The engine's `since` form for a time in nanoseconds since the epoch: `SECONDS.NNNNNNNNN`. */
export function engineTimestamp(nanos: number): string {
  // Exact for any integer float: `%` on floats is exact, and the subtraction leaves a multiple of 1e9.
  const frac = nanos % 1e9;
  return `${(nanos - frac) / 1e9}.${String(frac).padStart(9, '0')}`;
}

export class EngineEventStream {
  readonly #o: EventStreamOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #stableMs: number;
  readonly #jitter: number;
  #abort: AbortController | undefined;
  #running: Promise<void> | undefined;
  /** The engine time of the last event delivered, and which events had exactly that time. */
  #lastNano = 0;
  #atLastNano = new Set<string>();
  #connected = false;

  constructor(options: EventStreamOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? abortableSleep;
    this.#random = options.random ?? Math.random;
    this.#initialMs = options.backoff?.initialMs ?? 500;
    this.#maxMs = Math.max(this.#initialMs, options.backoff?.maxMs ?? 30_000);
    this.#stableMs = options.backoff?.stableMs ?? 10_000;
    this.#jitter = Math.min(1, Math.max(0, options.backoff?.jitter ?? 0.1));
  }

  /** Whether a stream is open now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Starts following the stream in the background; a second call does nothing. */
  start(): void {
    if (this.#running) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#running = this.#loop(abort.signal).catch((e) => {
      // The loop catches everything it expects; this is a bug, and the agent must hear of it.
      this.#o.log.error('The engine event watcher stopped on an unexpected error', { error: message(e) });
    });
  }

  /** Closes the stream and stops reconnecting; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#running;
    this.#running = undefined;
    this.#abort = undefined;
  }

  /** The wait before reconnection attempt number `failures` (1 for the first after a loss). */
  #delayMs(failures: number): number {
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(failures - 1, 52));
    return Math.round(base * (1 - this.#jitter * this.#random()));
  }

  async #loop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let everConnected = false;
    let downSince = this.#now();
    while (!signal.aborted) {
      let connectedAt: number | undefined;
      let iterator: AsyncIterator<EngineEvent> | undefined;
      try {
        const since = await this.#since(signal);
        if (signal.aborted) break;
        iterator = this.#o.engine.events(this.#o.filters, signal, { since })[Symbol.asyncIterator]();
        // Asking for the first event sends the request; until it answers, the owner may reconcile.
        let next = iterator.next();
        next.catch(() => {}); // handled below; not "unhandled" while onConnected runs
        connectedAt = this.#now();
        this.#connected = true;
        this.#announce({ reconnect: everConnected, downtimeMs: Math.max(0, connectedAt - downSince) });
        everConnected = true;
        for (;;) {
          // The adapter ends its stream on abort; a stream that did not would still not hold up stop().
          const r = await untilAborted(next, signal, () => new Error('aborted'));
          if (r.done) break;
          this.#deliver(r.value);
          next = iterator.next();
        }
        if (!signal.aborted) this.#o.log.warn('The Docker event stream ended; reconnecting', { connected_ms: this.#now() - connectedAt });
      } catch (e) {
        if (signal.aborted) break;
        this.#o.log.warn(connectedAt === undefined ? 'Cannot reach the Docker engine for its events; retrying' : 'The Docker event stream failed; reconnecting', { error: message(e) });
      } finally {
        this.#connected = false;
        // Lets a stream that ignored the abort clean up whenever it can; nobody waits for it.
        if (signal.aborted) iterator?.return?.()?.catch(() => {});
      }
      if (signal.aborted) break;
      const now = this.#now();
      if (connectedAt !== undefined) {
        downSince = now;
        if (now - connectedAt >= this.#stableMs) failures = 0;
      }
      failures++;
      const wait = this.#delayMs(failures);
      this.#o.log.debug('Waiting before reconnecting to the Docker event stream', { wait_ms: wait, attempt: failures });
      await this.#sleep(wait, signal);
    }
  }

  /**
   * Asks the engine for its clock, which also tells whether it is there at all (the events call
   * itself says nothing until the first event), and says where the new stream starts: just
   * after the last event seen, so the engine replays what it still holds from the gap; before
   * any event, the engine's time now, so nothing that happens between this point and the
   * owner's reconcile can slip between the two.
   */
  async #since(signal: AbortSignal): Promise<string> {
    const ms = (await untilAborted(this.#o.engine.info(), signal, () => new Error('aborted'))).systemTime.getTime();
    if (this.#lastNano > 0) return engineTimestamp(this.#lastNano);
    return `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}000000`;
  }

  #announce(connected: Connected): void {
    if (connected.reconnect) this.#o.metrics?.reconnects?.inc();
    this.#o.log.info(connected.reconnect ? 'Reconnected to the Docker event stream' : 'Following the Docker event stream', { downtime_ms: connected.downtimeMs });
    try {
      const done = this.#o.onConnected(connected);
      if (done instanceof Promise) done.catch((e) => this.#o.log.error('Reconcile after connecting to the Docker engine failed', { error: message(e) }));
    } catch (e) {
      this.#o.log.error('Reconcile after connecting to the Docker engine failed', { error: message(e) });
    }
  }

  /**
   * Passes an event on once: a replay from `since` repeats the events that had its exact time.
   * An event stamped before the newest one seen is not a repeat: the engine stamps an event, then
   * publishes it, from many goroutines at once, so a live stream under load is not in time order
   * (and a replay starts at the newest stamp seen, so it holds nothing older).
   */
  #deliver(event: EngineEvent): void {
    const t = event.timeNano;
    if (t > 0) {
      const key = `${event.type}\0${event.action}\0${event.id}`;
      if (t === this.#lastNano && this.#atLastNano.has(key)) return;
      if (t > this.#lastNano) {
        this.#lastNano = t;
        this.#atLastNano.clear();
      }
      if (t === this.#lastNano) this.#atLastNano.add(key);
    }
    try {
      this.#o.onEvent(event);
    } catch (e) {
      this.#o.log.error('Handling a Docker event failed', { type: event.type, action: event.action, id: event.id.slice(0, 12), error: message(e) });
    }
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

