// The agent's rotation loop. It notices work from three sources: providers (polled every
// agent.watch.polling_interval, or checked at once on a webhook), the engine's event stream (a
// managed container started with its secret volumes empty, after a reboot or an engine restart),
// and recovery (rotations a crash interrupted). Work goes through the debounced queue, one entry
// per container, and is carried out by the rotation executor: several batches at once, sharing
// agent.rotation.concurrency slots, so that one project's slow rotation holds up no other; a
// container is never rotated by two of them at once. After every reconnection to the engine, and
// at start, a full reconcile re-derives everything from the engine and the providers, so events
// lost while disconnected (or dropped by a full queue) cost time, never correctness.
import { COMPOSE_PROJECT, LABEL_ROLE, LABEL_ROTATION } from '../compose/labels.ts';
import { parseSecretId } from '../compose/references.ts';
import type { DsoConfig } from '../config/load.ts';
import type { Engine, EngineEvent } from '../docker/engine.ts';
import { EngineEventStream } from '../docker/event-stream.ts';
import { publishFiles, volumeReady } from '../docker/secret-volumes.ts';
import { DsoError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import { ProviderError } from '../providers/contract.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';
import type { ResolvedValues, RotationDeps } from '../rotation/execute.ts';
import type { Fingerprinter } from '../rotation/fingerprint.ts';
import type { HealthSettings } from '../rotation/health.ts';
import { describeContainer, loadManaged, sameSource, type ManagedContainer } from '../rotation/inventory.ts';
import type { LocalRotationResult } from '../rotation/local.ts';
import { planRotation, type PlanDefaults } from '../rotation/plan.ts';
import { recoverRotations } from '../rotation/recover.ts';
import { runPlan, Slots } from '../rotation/run.ts';
import type { RotationState, Step } from '../rotation/state.ts';
import { Coalescer } from './coalesce.ts';
import { RotationQueue, type QueueEntry } from './queue.ts';
import type { AgentService, RotationStatus } from './service.ts';

/** How far ahead of now a dispatch takes queue entries that are about to be ready. */
const BATCH_SLACK_MS = 250;

/** Containers whose provider references the agent resolved (Cloud Mode `up`) are the agent's. */
const AGENT_SOURCE = { config: 'agent' };

export interface RotatorOptions {
  config: DsoConfig;
  service: AgentService;
  engine: Engine;
  state: RotationState;
  fingerprints: Fingerprinter;
  log: Logger;
  metrics: Metrics;
  /** Test-only (DSO_TEST_PAUSE_AT): stop still after this step, so a test can kill the agent there. */
  pauseAt?: string;
  now?: () => number;
}

export class Rotator {
  readonly #o: RotatorOptions;
  readonly #queue: RotationQueue;
  readonly #events: EngineEventStream;
  readonly #now: () => number;
  /** Engine calls outside a rotation (restore, checks) end within the health timeout too. */
  readonly #engine: Engine;
  #pollTimer?: ReturnType<typeof setInterval>;
  #queueTimer?: ReturnType<typeof setTimeout>;
  /** Rotations at once, over every batch and `rotate` running. */
  readonly #slots: Slots;
  /**
   * Containers being rotated now, each with the run that has it: a container is in one run at a
   * time (work that comes for it meanwhile waits in the queue, a `rotate` waits for the run). The
   * new container a rotation under way made counts as part of that run too (see #runOf).
   */
  readonly #busy = new Map<string, Promise<unknown>>();
  /** Work that came for a container while it was being rotated: queued again when a run ends. */
  readonly #held = new Map<string, QueueEntry>();
  /**
   * Secrets to check again when a run ends: a check found containers that use them under
   * rotation, whose values it could not judge (the rotation gives them what it fetched earlier).
   */
  readonly #recheck = new Set<string>();
  #reconciling?: Promise<void>;
  #stopped = false;
  /** Aborted by stop(): runs start no new rotation. */
  readonly #stopping = new AbortController();
  #restoring = new Set<string>();
  /**
   * Replicas share their secret volumes, and a restart of N of them sends N events: each volume is
   * checked (an exec in its holder) once at a time for all of them, not N times at once.
   */
  readonly #volumeChecks = new Coalescer<boolean>();
  /** The fingerprints each queued container is to get, as seen when the change was found. */
  #queuedFingerprints = new Map<string, Record<string, string>>();
  /**
   * Values a container refused (its new instance was not healthy, or a dependency refused them):
   * not tried again by the watcher until the provider's value changes once more. `rotate` still can.
   */
  #refused = new Map<string, Record<string, string>>();

  constructor(o: RotatorOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    const watch = o.config.agent.watch;
    this.#queue = new RotationQueue({ debounceMs: watch.debounce_window, capacity: watch.queue_size, now: this.#now, metrics: o.metrics });
    this.#engine = o.engine.bounded({ callMs: o.config.agent.health_check.timeout });
    this.#slots = new Slots(o.config.agent.rotation.concurrency);
    this.#events = new EngineEventStream({
      engine: o.engine,
      filters: { type: ['container'], label: ['dso.managed=true'], event: ['start', 'restart', 'unpause'] },
      onEvent: (e) => this.#onEvent(e),
      onConnected: (c) => {
        if (c.reconnect) {
          o.log.warn('Reconnected to the Docker engine; reconciling', { downtime_ms: c.downtimeMs });
          // A value refused while the engine was going away (its shutdown kills new containers)
          // says nothing about the value: after a reconnect every value gets another try.
          this.#refused.clear();
          return this.reconcile('reconnect');
        }
      },
      log: o.log.child({ component: 'events' }),
      metrics: { reconnects: o.metrics.eventStreamReconnects },
    });
    o.service.rotationStatus = () => this.status();
  }

  get #health(): HealthSettings {
    const h = this.#o.config.agent.health_check;
    return { timeoutMs: h.timeout, intervalMs: h.interval, retries: h.retries };
  }

  get #defaults(): PlanDefaults {
    return { strategy: this.#o.config.defaults.rotation.strategy ?? this.#o.config.agent.rotation.strategy, signal: this.#o.config.defaults.rotation.signal };
  }

  /** Recovers, restores and checks everything once, then watches. */
  async start(): Promise<void> {
    await this.reconcile('start');
    if (this.#stopped) return;
    this.#events.start();
    this.#pollTimer = setInterval(() => void this.checkSecrets().catch((e) => this.#o.log.warn('Checking secrets failed', { reason: reason(e) })), this.#o.config.agent.watch.polling_interval);
    this.#pollTimer.unref?.();
  }

  /**
   * Stops watching; rotations not started yet are not started. A rotation under way has its own
   * deadline (agent.rotation.timeout); it is waited for that long, past that abandoned where it
   * stands, and the next start recovers it from the state file.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    clearInterval(this.#pollTimer);
    clearTimeout(this.#queueTimer);
    await this.#events.stop();
    // A reconcile under way (the one at start, say) is waited for too: the providers close next.
    const running = [...new Set(this.#busy.values()), ...(this.#reconciling ? [this.#reconciling] : [])];
    if (running.length > 0) {
      // A timer cleared once they end: a bare Bun.sleep in the race would keep the process alive
      // for the rest of the timeout after "Agent stopped" (2 minutes by default).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const limit = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#o.config.agent.rotation.timeout);
      });
      await Promise.race([Promise.allSettled(running), limit]);
      clearTimeout(timer);
    }
  }

  /** Recovery, then restoring empty secret volumes, then a drift check of every secret. */
  reconcile(why: string): Promise<void> {
    this.#reconciling ??= (async () => {
      try {
        this.#queue.clearReconcileFlag();
        for (const r of await this.#recover()) {
          if (r.rotateAgain) this.#push(r.rotateAgain.containerId, r.rotateAgain.ids, 'recovery');
        }
        const containers = await loadManaged(this.#engine);
        for (const c of containers) if (c.running && sameAgent(c)) await this.#restore(c);
        const live = new Set(containers.map((c) => c.id));
        await this.#o.state.prune(live);
        // What was remembered about containers that are gone (removed, or replaced by a rotation).
        for (const map of [this.#refused, this.#queuedFingerprints]) for (const id of map.keys()) if (!live.has(id)) map.delete(id);
        await this.checkSecrets();
      } catch (e) {
        this.#o.log.error('Reconcile failed; it runs again at the next poll or reconnect', { why, reason: reason(e) });
      } finally {
        this.#reconciling = undefined;
      }
    })();
    return this.#reconciling;
  }

  /**
   * Asks the providers for the current value of `ids` (every secret the agent's containers use,
   * when not given) and queues the containers whose fingerprint differs. Values are fingerprinted
   * and wiped at once. A container without a fingerprint of this agent's key for a secret (made
   * before, or by another agent) is adopted: its current fingerprint is recorded, nothing rotated.
   */
  async checkSecrets(ids?: readonly string[]): Promise<{ checked: number; queued: number }> {
    const containers = (await loadManaged(this.#engine)).filter(sameAgent);
    const wanted = new Set(containers.flatMap((c) => c.ids.filter((id) => id.includes(':'))));
    const refs = [...wanted].filter((id) => ids === undefined || ids.includes(id)).sort();
    if (refs.length === 0) return { checked: 0, queued: 0 };
    const { values, failures } = await this.#o.service.resolve(
      refs.map((r) => parseSecretId(r, 'check')),
      { fresh: true },
    );
    const current = new Map<string, string>();
    for (const v of values) {
      if (v.fingerprint) current.set(v.id, v.fingerprint);
      v.value.wipe();
    }
    for (const f of failures) this.#o.log.warn('Could not check a secret for changes', { secret: f.id, error: f.kind, reason: f.message });
    let queued = 0;
    for (const c of containers) {
      if (this.#runOf(c)) for (const id of c.ids) if (current.has(id)) this.#recheck.add(id);
      const inPlace = this.#o.state.markers(c.id);
      const changed: string[] = [];
      const adopt: Record<string, string> = {};
      const refused = this.#refused.get(c.id) ?? {};
      for (const id of c.ids) {
        const now = current.get(id);
        if (!now) continue;
        const had = inPlace[id] ?? c.markers[id];
        if (had === undefined || !this.#o.fingerprints.owns(had)) adopt[id] = now;
        else if (had !== now && refused[id] !== now) changed.push(id);
      }
      if (Object.keys(adopt).length > 0) await this.#o.state.setMarkers(c.id, adopt);
      if (changed.length > 0 && this.#push(c.id, changed, 'changed') !== 'dropped') {
        queued++;
        this.#queuedFingerprints.set(c.id, { ...(this.#queuedFingerprints.get(c.id) ?? {}), ...Object.fromEntries(changed.map((id) => [id, current.get(id)!])) });
      }
    }
    if (queued > 0) this.#o.log.info('Secrets changed at their providers', { containers: queued, secrets: refs.filter((r) => containers.some((c) => c.ids.includes(r))) });
    return { checked: refs.length, queued };
  }

  /**
   * `rotate NAME` through the agent: every container of the agent's that uses `secret`, now. It
   * waits only for rotations of those same containers (then looks at them again: they may have
   * been replaced), never for others.
   */
  async rotateNow(secret: string, dryRun: boolean, progress: (line: string) => void): Promise<LocalRotationResult> {
    for (;;) {
      const containers = await loadManaged(this.#engine);
      const users = containers.filter((c) => sameSource(c, secret, AGENT_SOURCE));
      const plan = planRotation(users, new Map(users.map((c) => [c.id, [secret]])), this.#defaults);
      if (dryRun || plan.rotations.length === 0) return { plan, outcomes: [] };
      const ids = plan.rotations.map((r) => r.containerId);
      const busy = users.filter((c) => ids.includes(c.id) && this.#runOf(c));
      if (busy.length > 0) {
        progress(`waiting for a rotation under way of ${busy.map((c) => c.name).join(', ')}`);
        await Promise.allSettled(busy.map((c) => this.#runOf(c)));
        continue;
      }
      const run = runPlan(this.#deps(progress), plan, users, this.#runOptions());
      this.#hold(ids, run);
      return { plan, outcomes: await run };
    }
  }

  status(): RotationStatus {
    return {
      queue: { depth: this.#queue.size + this.#held.size, capacity: this.#queue.capacity, drops: this.#drops },
      pendingRotations: this.#o.state.inProgress().map((r) => ({ rotation: r.id, container: r.container.name, strategy: r.strategy, step: r.step, status: r.status, startedAt: r.startedAt, secrets: r.ids, ...(r.reason ? { reason: r.reason } : {}) })),
      recentRotations: this.#o.state
        .recent()
        .slice(-10)
        .map((r) => ({ rotation: r.id, container: r.container.name, strategy: r.strategy, status: r.status, finishedAt: r.updatedAt, ...(r.durationMs === undefined ? {} : { durationMs: r.durationMs }), ...(r.downtimeMs === undefined ? {} : { downtimeMs: r.downtimeMs }), ...(r.reason ? { reason: r.reason } : {}) })),
    };
  }

  #drops = 0;

  #push(containerId: string, refs: string[], why: string): string {
    const result = this.#queue.push({ containerId, refs, reason: why });
    if (result === 'dropped') this.#drops++;
    this.#schedule();
    return result;
  }

  /** One timer, for when the earliest queue entry is ready. */
  #schedule(): void {
    if (this.#stopped) return;
    const at = this.#queue.nextReadyAt();
    clearTimeout(this.#queueTimer);
    if (at === undefined) return;
    this.#queueTimer = setTimeout(() => this.#dispatch(), Math.max(0, at - this.#now()));
  }

  /**
   * Ends unfinished rotations (recovery) but those this agent is running now: their container's
   * lock would make recovery wait for them, and they end by themselves. `mine`: containers of the
   * caller's own run, which has not started rotating them yet.
   */
  #recover(mine: ReadonlySet<string> = new Set()): ReturnType<typeof recoverRotations> {
    return recoverRotations(
      { engine: this.#o.engine, state: this.#o.state, health: this.#health, log: (l, m, f) => this.#o.log[l](m, f), resolve: (ids) => this.#resolveFresh(ids) },
      { only: (r) => mine.has(r.container.id) || !this.#busy.has(r.container.id) },
    );
  }

  /** Recovery only (no drift check, which would queue and dispatch again): a failure is retried at the next dispatch. */
  async #recoverLeftovers(mine: ReadonlySet<string>): Promise<void> {
    try {
      for (const r of await this.#recover(mine)) {
        if (r.rotateAgain) this.#push(r.rotateAgain.containerId, r.rotateAgain.ids, 'recovery');
      }
    } catch (e) {
      this.#o.log.warn('Could not recover a rotation left in progress; trying again before the next one', { reason: reason(e) });
    }
  }

  /**
   * The run `c` is part of, if any: its own (it is being rotated), or that of the rotation under
   * way that created it (a new container, not yet the service's for good: rotating it now would
   * race that rotation). `except`: the caller's own run, which does not count.
   */
  #runOf(c: ManagedContainer, except?: ReadonlySet<string>): Promise<unknown> | undefined {
    const own = except?.has(c.id) ? undefined : this.#busy.get(c.id);
    if (own) return own;
    const made = c.details.Config?.Labels?.[LABEL_ROTATION];
    const r = made ? this.#o.state.get(made) : undefined;
    if (!r || r.status !== 'in_progress' || except?.has(r.container.id)) return undefined;
    return this.#busy.get(r.container.id);
  }

  /** Marks `ids` as being rotated by `run` until it ends; then the queue goes on. */
  #hold(ids: readonly string[], run: Promise<unknown>): void {
    const settled = run.then(
      () => {},
      () => {},
    );
    for (const id of ids) this.#busy.set(id, settled);
    void settled.then(() => {
      for (const id of ids) if (this.#busy.get(id) === settled) this.#busy.delete(id);
      // Whatever waited goes back to the queue; what is still under way is held again there.
      for (const [id, waiting] of this.#held) if (!this.#stopped) this.#queue.push({ containerId: id, refs: waiting.refs, reason: waiting.reasons[0] ?? 'changed' });
      this.#held.clear();
      if (this.#recheck.size > 0 && !this.#stopped) {
        const again = [...this.#recheck];
        this.#recheck.clear();
        void this.checkSecrets(again).catch((e) => this.#o.log.warn('Checking secrets failed', { reason: reason(e) }));
      }
      this.#schedule();
    });
  }

  /** Keeps a queue entry aside until a run ends (merged with what already waits for that container). */
  #wait(e: QueueEntry): void {
    const waiting = this.#held.get(e.containerId);
    this.#held.set(e.containerId, waiting ? { ...waiting, refs: [...new Set([...waiting.refs, ...e.refs])] } : e);
  }

  /**
   * Takes the queue entries that are ready and rotates them, as one batch (so that depends_on
   * waves work across them), beside any batch still running. An entry whose container is being
   * rotated waits in the queue until that rotation ends.
   */
  #dispatch(): void {
    if (this.#stopped) return;
    // Entries queued by one check or one burst become ready within moments of each other.
    const ready = this.#queue.takeReady(this.#now() + BATCH_SLACK_MS);
    for (const e of ready.filter((x) => this.#busy.has(x.containerId))) this.#wait(e);
    const take = ready.filter((e) => !this.#busy.has(e.containerId));
    if (take.length === 0) return this.#schedule();
    const mine = new Set(take.map((e) => e.containerId));
    const run = (async () => {
      // A record still in progress for a container no other run has was left by one that could
      // not write its end (a full disk, the engine away). Finish or undo it first.
      const leftover = (r: { status: string; container: { id: string } }) => r.status === 'in_progress' && (mine.has(r.container.id) || !this.#busy.has(r.container.id));
      if (!this.#reconciling && this.#o.state.inProgress().some(leftover)) await this.#recoverLeftovers(mine);
      const containers = await loadManaged(this.#engine);
      const byId = new Map(containers.map((c) => [c.id, c]));
      // A new container that another run's rotation made (and may still remove) waits for it.
      const later = take.filter((e) => byId.has(e.containerId) && this.#runOf(byId.get(e.containerId)!, mine));
      for (const e of later) this.#wait(e);
      const changes = new Map(take.filter((e) => byId.has(e.containerId) && !later.includes(e)).map((e) => [e.containerId, e.refs]));
      const plan = planRotation(containers.filter((c) => changes.has(c.id)), changes, this.#defaults);
      for (const s of plan.skipped) this.#o.log.info('Not rotated', { container: s.name, secrets: s.ids, reason: s.reason });
      const outcomes = await runPlan(this.#deps(), plan, containers, this.#runOptions());
      const byName = new Map(containers.map((c) => [c.name, c.id]));
      for (const o of outcomes) {
        const cid = byName.get(o.container);
        const expected = cid ? this.#queuedFingerprints.get(cid) : undefined;
        if (cid) this.#queuedFingerprints.delete(cid);
        if (o.status === 'done') continue;
        this.#o.log.warn('A rotation did not complete', { container: o.container, status: o.status, reason: o.reason });
        if (cid && expected && (o.status === 'rolled_back' || o.status === 'skipped')) {
          this.#refused.set(cid, { ...(this.#refused.get(cid) ?? {}), ...expected });
          this.#o.log.warn('Not retrying this value for this container until it changes again (or `docker dso rotate`)', { container: o.container, secrets: Object.keys(expected) });
        }
      }
    })()
      .catch((e) => this.#o.log.error('Rotation dispatch failed', { reason: reason(e) }))
      .finally(() => {
        if (this.#queue.reconcileNeeded && !this.#stopped) void this.reconcile('queue overflow');
      });
    this.#hold([...mine], run);
    this.#schedule();
  }

  #runOptions() {
    const r = this.#o.config.agent.rotation;
    return { concurrency: r.concurrency, jitterMs: r.jitter, slots: this.#slots, signal: this.#stopping.signal };
  }

  #deps(progress?: (line: string) => void): RotationDeps {
    const log = this.#o.log.child({ component: 'rotation' });
    return {
      engine: this.#o.engine,
      state: this.#o.state,
      health: this.#health,
      timeoutMs: this.#o.config.agent.rotation.timeout,
      resolve: (ids) => this.#resolveFresh(ids),
      log: (level, msg, fields) => log[level](msg, fields),
      metrics: this.#o.metrics,
      ...(progress ? { progress } : {}),
      ...(this.#o.pauseAt ? { afterStep: (step: Step) => this.#maybePause(step) } : {}),
      now: this.#now,
    };
  }

  /** The providers' current values of `ids`, with their fingerprints; any failure fails the whole. */
  async #resolveFresh(ids: string[]): Promise<ResolvedValues> {
    const local = ids.filter((id) => !id.includes(':'));
    if (local.length > 0) throw new DsoError('ROTATION_FAILED', `the agent cannot rotate a container that also uses local vault names (${local.join(', ')}): run \`docker dso rotate\` there in Local Mode`);
    const { values, failures } = await this.#o.service.resolve(ids.map((id) => parseSecretId(id, 'rotation')), { fresh: true });
    const out: ResolvedValues = { values: new Map<string, SecretBytes>(), markers: new Map() };
    for (const v of values) {
      out.values.set(v.id, v.value);
      if (v.fingerprint) out.markers.set(v.id, v.fingerprint);
    }
    if (failures.length > 0) {
      wipeAll(...out.values.values());
      throw new ProviderError('unavailable', `could not fetch ${failures.map((f) => `${f.id} (${f.kind}: ${f.message})`).join('; ')}`);
    }
    return out;
  }

  async #maybePause(step: Step): Promise<void> {
    if (step !== this.#o.pauseAt) return;
    this.#o.log.warn('Paused at a rotation step (DSO_TEST_PAUSE_AT, for tests only)', { step });
    await new Promise(() => {});
  }

  #onEvent(e: EngineEvent): void {
    if (this.#stopped || e.type !== 'container' || e.attributes[LABEL_ROLE]) return;
    void (async () => {
      const d = await this.#engine.inspectDetails(e.id);
      if (!d) return;
      const c = describeContainer(d);
      if (c.running && sameAgent(c)) await this.#restore(c);
    })()
      .catch((err) => this.#o.log.warn('Could not restore a container\'s secrets', { container: e.attributes.name, reason: reason(err) }))
      // From the engine's stamp, so time spent in the engine's and the stream's buffers counts too.
      .finally(() => {
        if (e.timeNano > 0) this.#o.metrics.eventHandleDuration.observe({ action: e.action }, Math.max(0, this.#now() - e.timeNano / 1e6) / 1000);
      });
  }

  /**
   * Puts a container's secret files back when its volumes are empty (a reboot or an engine
   * restart emptied RAM); its entrypoint waits for them. From the cache when it can: the values
   * the container had, unless the provider changed them, which the drift check then rotates.
   */
  async #restore(c: ManagedContainer): Promise<void> {
    if (this.#restoring.has(c.id) || c.mounts.length === 0) return;
    this.#restoring.add(c.id);
    try {
      const empty: Array<{ dir: string; volume: string }> = [];
      for (const m of c.mounts) if (!(await this.#volumeChecks.run(m.volume, () => volumeReady(this.#engine, m.volume)))) empty.push(m);
      if (empty.length === 0) return;
      const files = c.files.filter((f) => empty.some((m) => f.path.startsWith(`${m.dir}/`)));
      const local = files.filter((f) => !f.id.includes(':'));
      if (local.length > 0) {
        this.#o.log.warn('A container waits for local vault secrets the agent cannot restore; run `docker dso up` for its project', { container: c.name, project: c.details.Config?.Labels?.[COMPOSE_PROJECT], secrets: [...new Set(local.map((f) => f.id))] });
        return;
      }
      const ids = [...new Set(files.map((f) => f.id))];
      const { values, failures } = await this.#o.service.resolve(ids.map((id) => parseSecretId(id, 'restore')));
      try {
        if (failures.length > 0) throw new ProviderError('unavailable', failures.map((f) => `${f.id}: ${f.kind}`).join('; '));
        const byId = new Map(values.map((v) => [v.id, v.value]));
        for (const m of empty) await publishFiles(this.#engine, m.volume, m.dir, files.filter((f) => f.path.startsWith(`${m.dir}/`)), (id) => byId.get(id)!.expose());
      } finally {
        wipeAll(...values.map((v) => v.value));
      }
      this.#o.log.info('Restored secret files emptied by a restart', { container: c.name, volumes: empty.map((m) => m.volume) });
    } finally {
      this.#restoring.delete(c.id);
    }
  }
}

function sameAgent(c: ManagedContainer): boolean {
  return c.config === AGENT_SOURCE.config;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
