// Execute: carries out one planned rotation, step by step, recording each step in the state file
// before going on, so that recovery (src/rotation/recover.ts) can finish or undo it after a
// crash. It decides nothing the plan did not: on any failure before the new container has taken
// over, it rolls back so that the original keeps serving.
//   signal:  new files published into the container's volumes in place (each file replaced
//            atomically), then the signal.
//   restart: a new generation of secret volumes; the original stopped and set aside under a
//            temporary name; the new container created under the original name, started, checked.
//   rolling: the same new container created beside the original under a temporary name, started
//            and checked while the original serves; then the names swapped and the original stopped.
// Deadlines: the whole rotation of one container within agent.rotation.timeout, each engine call
// within the health timeout (a stop: plus its stop timeout), the health check within its own;
// whatever runs out first fails the rotation, which is then rolled back like any other failure.
import { deadline, untilAborted } from '../abortable.ts';
import { LABEL_MANAGED, LABEL_ROLE, LABEL_VERSIONS } from '../compose/labels.ts';
import { isUtf8 } from '../compose/rewrite.ts';
import { DEFAULT_STOP_TIMEOUT_S, type Engine } from '../docker/engine.ts';
import { baseVolumes, prepareGeneration, publishFiles, removeRotationObjects, retireVolumes } from '../docker/secret-volumes.ts';
import { DsoError } from '../errors.ts';
import type { Metrics } from '../observe/metrics.ts';
import { wipeAll, type SecretBytes } from '../secrets/secret-bytes.ts';
import { waitHealthy, type HealthSettings } from './health.ts';
import type { ManagedContainer } from './inventory.ts';
import type { PlannedRotation } from './plan.ts';
import { recreateSpec } from './recreate.ts';
import type { RotationRecord, RotationState, Step } from './state.ts';

export interface ResolvedValues {
  values: Map<string, SecretBytes>;
  /** Fingerprints for the container's labels, by id (only when the agent resolved). */
  markers: Map<string, string>;
}

export interface RotationDeps {
  engine: Engine;
  state: RotationState;
  /** Fresh values for these ids; the executor wipes them. */
  resolve(ids: string[]): Promise<ResolvedValues>;
  health: HealthSettings;
  /** The longest the rotation of one container may take (agent.rotation.timeout), rollback aside. */
  timeoutMs: number;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** Human progress lines (the CLI shows them). */
  progress?(line: string): void;
  metrics?: Pick<Metrics, 'rotationTotal' | 'rotationDuration' | 'rotationHealthCheckDuration' | 'containerRotationDuration' | 'containerRenameFailures'>;
  /** Test-only: runs after each step is recorded (a crash test pauses the agent here). */
  afterStep?(step: Step, record: RotationRecord): Promise<void>;
  now?(): number;
}

export type OutcomeStatus = 'done' | 'rolled_back' | 'failed' | 'stuck' | 'skipped';

export interface RotationOutcome {
  rotation: string;
  container: string;
  strategy: PlannedRotation['strategy'];
  status: OutcomeStatus;
  reason?: string;
  durationMs: number;
  /** How long the service did not answer (restart strategy). */
  downtimeMs?: number;
  healthMs?: number;
}

/** A short id for names and labels: enough to be unique among a host's rotations. */
export function newRotationId(): string {
  return `r${Date.now().toString(36)}${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString('hex')}`;
}

class RolledBack extends Error {}

export async function executeRotation(deps: RotationDeps, planned: PlannedRotation, container: ManagedContainer): Promise<RotationOutcome> {
  const now = deps.now ?? Date.now;
  const started = now();
  const rotation = newRotationId();
  let interrupted = false;
  // A progress line is for whoever watches (a CLI that may have gone): it never fails a rotation.
  const progress = (line: string) => {
    try {
      deps.progress?.(line);
    } catch {}
  };
  const result = await deps.state.withContainerLock(container.id, async () => {
    // From here (not while waiting for the lock) the rotation has agent.rotation.timeout. Every
    // engine call of it ends at that deadline at the latest; the undo has calls of its own.
    const limit = deadline(deps.timeoutMs, () => new DsoError('ROTATION_FAILED', `the rotation took longer than agent.rotation.timeout (${Math.round(deps.timeoutMs / 1000)} s)`, { hint: 'raise agent.rotation.timeout in dso.yaml, or find what was slow in the log' }));
    const engine = deps.engine.bounded({ callMs: deps.health.timeoutMs, signal: limit.signal });
    const undo = deps.engine.bounded({ callMs: deps.health.timeoutMs });
    const run: RotationDeps = {
      ...deps,
      engine,
      // A value that arrives after the deadline is wiped at once, not handed to anyone.
      resolve: (ids) => {
        const p = deps.resolve(ids);
        return untilAborted(p, limit.signal).catch((e: unknown) => {
          if (limit.signal.aborted) p.then((late) => wipeAll(...late.values.values())).catch(() => {});
          throw e;
        });
      },
    };
    try {
      // Re-read under the lock: another rotation may have replaced the container meanwhile.
      const fresh = await engine.inspectDetails(container.id);
      if (!fresh) return outcome('failed', 'the container no longer exists');
      const record = await deps.state.begin({
        id: rotation,
        container: { id: container.id, name: container.name, ...(container.project ? { project: container.project } : {}), ...(container.service ? { service: container.service } : {}), running: container.running },
        strategy: planned.strategy,
        ids: planned.ids,
      });
      deps.log('info', 'Rotation started', { rotation, container: container.name, strategy: planned.strategy, secrets: planned.ids });
      progress(`${container.name}: ${planned.strategy}...`);
      const step = async (s: Step, patch: Parameters<RotationState['advance']>[2] = {}) => {
        await deps.state.advance(rotation, s, patch);
        await deps.afterStep?.(s, { ...record, step: s, ...patch });
      };
      try {
        const result: { downtimeMs?: number; healthMs?: number } = planned.strategy === 'signal' ? await signalStrategy(run, planned, container, step, limit.signal) : await replaceStrategy(run, planned, container, rotation, step, undo, limit.signal);
        const durationMs = now() - started;
        await deps.state.finish(rotation, 'done', { durationMs, ...(result.downtimeMs === undefined ? {} : { downtimeMs: result.downtimeMs }) });
        deps.log('info', 'Rotation completed', { rotation, container: container.name, strategy: planned.strategy, duration_ms: durationMs, ...(result.downtimeMs === undefined ? {} : { downtime_ms: result.downtimeMs }) });
        progress(`${container.name}: done in ${(durationMs / 1000).toFixed(1)} s${result.downtimeMs === undefined ? '' : `, ${(result.downtimeMs / 1000).toFixed(1)} s without service`}`);
        return outcome('done', undefined, result);
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        const status: OutcomeStatus = e instanceof RolledBack ? 'rolled_back' : 'failed';
        // An unexpected failure (the engine went away...) after the engine was changed leaves the
        // record in progress: recovery, which reads what the engine shows, finishes or undoes it.
        const record = deps.state.get(rotation);
        interrupted = status === 'failed' && record !== undefined && (record.step !== 'planned' || (record.volumes?.length ?? 0) > 0);
        if (!interrupted) await deps.state.finish(rotation, status, { reason, durationMs: now() - started }).catch(() => {});
        deps.log('error', status === 'rolled_back' ? 'ROTATION ROLLBACK' : 'Rotation failed', { rotation, container: container.name, strategy: planned.strategy, reason, ...(interrupted ? { recovery: 'pending' } : {}) });
        progress(`${container.name}: ${status === 'rolled_back' ? 'rolled back, the original keeps serving' : 'failed'}: ${reason}`);
        return outcome(status, reason);
      }
    } catch (e) {
      // Before anything changed (the container could not even be read in time).
      return outcome('failed', e instanceof Error ? e.message : String(e));
    } finally {
      limit.clear();
    }
  });
  if (interrupted) {
    // Outside the container's lock, which recovery takes. If the engine is still away this
    // fails too, and the next start, reconnect or rotation recovers it. Only this rotation:
    // the others in progress are running, in this process or another.
    const { recoverRotations } = await import('./recover.ts');
    const recovered = await recoverRotations({ engine: deps.engine, state: deps.state, health: deps.health, log: deps.log, resolve: deps.resolve }, { only: (r) => r.id === rotation }).catch(() => []);
    const mine = recovered.find((r) => r.rotation === rotation);
    if (mine) return { ...result, reason: `${result.reason}; recovered: ${mine.reason}` };
  }
  return result;

  function outcome(status: OutcomeStatus, reason?: string, result: { downtimeMs?: number; healthMs?: number } = {}): RotationOutcome {
    const durationMs = now() - started;
    const metricStatus = status === 'done' ? 'success' : status === 'rolled_back' ? 'rollback' : 'failure';
    for (const id of planned.ids) {
      deps.metrics?.rotationTotal.inc({ secret: id, status: metricStatus });
      deps.metrics?.rotationDuration.observe({ secret: id, status: metricStatus }, durationMs / 1000);
      if (result.healthMs !== undefined) deps.metrics?.rotationHealthCheckDuration.observe({ secret: id }, result.healthMs / 1000);
    }
    deps.metrics?.containerRotationDuration.observe({ container: container.name }, durationMs / 1000);
    return { rotation, container: container.name, strategy: planned.strategy, status, ...(reason ? { reason } : {}), durationMs, ...result };
  }
}

type StepFn = (s: Step, patch?: Parameters<RotationState['advance']>[2]) => Promise<void>;

/** New files in place, then the signal. The container keeps running throughout. */
async function signalStrategy(deps: RotationDeps, planned: PlannedRotation, c: ManagedContainer, step: StepFn, signal: AbortSignal): Promise<{ healthMs?: number }> {
  const files = c.files.filter((f) => planned.ids.includes(f.id));
  const resolved = await deps.resolve([...new Set(files.map((f) => f.id))]);
  try {
    for (const m of c.mounts) {
      const inDir = files.filter((f) => f.path.startsWith(`${m.dir}/`));
      if (inDir.length > 0) await publishFiles(deps.engine, m.volume, m.dir, inDir, (id) => resolved.values.get(id)!.expose());
    }
  } finally {
    wipeAll(...resolved.values.values());
  }
  await step('files-published');
  await deps.engine.killContainer(c.id, planned.signal);
  await step('signalled');
  const health = await waitHealthy({ engine: deps.engine, signal, ...(deps.now ? { now: deps.now } : {}) }, c.id, c.probe.kind === 'healthcheck' ? { kind: 'running' } : c.probe, deps.health);
  if (!health.ok) throw new Error(`after ${planned.signal}: ${health.reason}`);
  if (resolved.markers.size > 0) await deps.state.setMarkers(c.id, Object.fromEntries(resolved.markers));
  return { healthMs: health.ms };
}

/** restart and rolling: a new container with the new values replaces the original. */
async function replaceStrategy(deps: RotationDeps, planned: PlannedRotation, c: ManagedContainer, rotation: string, step: StepFn, undo: Engine, signal: AbortSignal): Promise<{ downtimeMs?: number; healthMs?: number }> {
  // Everything the new container needs is gathered before anything changes; the values are kept
  // (as bytes) until the end, for the compose model's own volumes, then wiped.
  const resolved = await deps.resolve(c.ids);
  try {
    const result = await replaceWith(deps, planned, c, rotation, step, resolved, undo, signal);
    await refreshBaseVolumes(deps, c, resolved);
    return result;
  } finally {
    wipeAll(...resolved.values.values());
  }
}

/**
 * The volumes the compose model names hold the old values still (the new container has volumes
 * of its own): give them the new ones, so that a container Compose creates from the model later
 * (a scale-up) starts with them, and no old value lingers in RAM. Best effort: `up` does it too.
 */
export async function refreshBaseVolumes(deps: Pick<RotationDeps, 'engine' | 'log'>, c: ManagedContainer, resolved: ResolvedValues): Promise<void> {
  if (!c.project || !c.service || c.files.length === 0) return;
  try {
    const apps = (await deps.engine.listContainers([`${LABEL_MANAGED}=true`])).filter((x) => !x.labels[LABEL_ROLE]);
    for (const b of await baseVolumes(deps.engine, c.project, c.service)) {
      // Still mounted by other containers of the service (replicas not rotated yet): their files
      // must not change under them; the last of them to rotate refreshes it.
      if (apps.some((x) => x.volumes.includes(b.volume))) continue;
      const files = c.files.filter((f) => f.path.startsWith(`${b.dir}/`));
      if (files.length > 0) await publishFiles(deps.engine, b.volume, b.dir, files, (id) => resolved.values.get(id)!.expose());
    }
  } catch (e) {
    deps.log('warn', 'Could not refresh the compose model\'s secret volume; `docker dso up` will', { container: c.name, reason: e instanceof Error ? e.message : String(e) });
  }
}

async function replaceWith(deps: RotationDeps, planned: PlannedRotation, c: ManagedContainer, rotation: string, step: StepFn, resolved: ResolvedValues, undo: Engine, signal: AbortSignal): Promise<{ downtimeMs?: number; healthMs?: number }> {
  const { engine } = deps;
  const now = deps.now ?? Date.now;
  const d = c.details;
  const rolling = planned.strategy === 'rolling';
  const tag = rotation.slice(-8);
  const oldName = `${c.name}-dso-old-${tag}`;
  const newName = rolling ? `${c.name}-dso-new-${tag}` : c.name;

  let downtimeFrom: number | undefined;
  let renamed = false;
  let newId: string | undefined;
  let stopAsked = false;
  // The undo runs on an engine view of its own: the rotation's deadline may be what failed it.
  const rollback = async (reason: string): Promise<never> => {
    try {
      if (newId) await undo.removeContainer(newId);
      if (renamed) await undo.renameContainer(c.id, c.name);
      if (c.running) {
        // A stop the deadline cut short may still be under way in the engine: wait for its end
        // (at once when the original is already stopped), or it would stop what is started next.
        if (stopAsked) await undo.stopContainer(c.id, stopTimeout(d));
        await undo.startContainer(c.id);
      }
      await removeRotationObjects(undo, rotation);
    } catch (e) {
      // The undo itself failed (the engine went away): not rolled back yet. The record stays in
      // progress and recovery, which reads what the engine then shows, finishes the undo.
      throw new Error(`${reason}; undoing it failed (${e instanceof Error ? e.message : String(e)}), recovery will finish it`);
    }
    throw new RolledBack(reason);
  };
  const failed = (e: unknown) => (e instanceof Error ? e.message : String(e));

  let generation: Awaited<ReturnType<typeof prepareGeneration>> | undefined;
  let spec: ReturnType<typeof recreateSpec>;
  const env = new Map<string, string>();
  try {
    for (const e of c.env) {
      const bytes = resolved.values.get(e.id)!.expose();
      if (!isUtf8(bytes) || bytes.includes(0)) throw new DsoError('INVALID_REFERENCE', `secret ${e.id} is not text without NUL bytes, so it cannot be the variable ${e.variable}`, { hint: 'deliver it as a file with dsofile:// instead' });
      env.set(e.variable, new TextDecoder().decode(bytes));
    }
    if (c.mounts.length > 0) {
      generation = await prepareGeneration(
        engine,
        { project: c.project ?? 'dso', service: c.service ?? c.name, rotation, dirs: c.mounts.map((m) => m.dir) },
        c.files,
        (id) => resolved.values.get(id)!.expose(),
        (objects) => step('planned', { volumes: objects.volumes, ...(objects.holder ? { holder: objects.holder } : {}) }),
      );
    }
    const markers = { ...c.markers, ...Object.fromEntries(resolved.markers) };
    const image = await sameImage(engine, d);
    spec = recreateSpec(d, { name: newName, env, volumes: generation?.volumes ?? new Map(), labels: resolved.markers.size > 0 ? { [LABEL_VERSIONS]: JSON.stringify(markers) } : {}, image, rotation });
  } catch (e) {
    // Out of time before anything was stopped: undone at once (another failure here is left to
    // recovery, as before).
    if (signal.aborted) return rollback(`the new container could not be prepared: ${failed(e)}`);
    throw e;
  } finally {
    env.clear();
  }
  await step('volumes-ready', generation ? { volumes: [...generation.volumes.values()], holder: generation.holder } : {});

  if (!rolling && c.running) {
    downtimeFrom = now();
    stopAsked = true;
    try {
      await engine.stopContainer(c.id, stopTimeout(d));
    } catch (e) {
      return rollback(`the original could not be stopped: ${failed(e)}`);
    }
    await step('original-stopped');
  }
  if (!rolling) {
    try {
      await engine.renameContainer(c.id, oldName);
    } catch (e) {
      return rollback(`the original could not be renamed: ${failed(e)}`);
    }
    renamed = true;
    await step('original-renamed', { oldName });
  }
  try {
    newId = await engine.createContainer(spec.spec);
    for (const n of spec.extraNetworks) await engine.connectNetwork(n.network, newId, n.endpoint);
  } catch (e) {
    return rollback(`the new container could not be created: ${failed(e)}`);
  }
  await step('created', { newContainerId: newId, newName });
  if (!c.running) {
    // A stopped container is updated and left stopped: nothing to check.
    await engine.removeContainer(c.id);
    await retireVolumes(engine, c.mounts.map((m) => m.volume)).catch(() => {});
    await step('original-removed');
    return {};
  }
  try {
    await engine.startContainer(newId);
  } catch (e) {
    return rollback(`the new container did not start: ${failed(e)}`);
  }
  await step('started');
  let health: Awaited<ReturnType<typeof waitHealthy>>;
  try {
    health = await waitHealthy({ engine, signal, ...(deps.now ? { now: deps.now } : {}) }, newId, c.probe, deps.health);
  } catch (e) {
    return rollback(`the new container was not checked in time: ${failed(e)}`);
  }
  if (!health.ok) return rollback(`the new container was not healthy: ${health.reason}`);
  const downtimeMs = downtimeFrom === undefined ? undefined : now() - downtimeFrom;
  await step('healthy', downtimeMs === undefined ? {} : { downtimeMs });

  if (rolling) {
    // The swap. Until the new container has the name, the original can take it back.
    await engine.renameContainer(c.id, oldName);
    renamed = true;
    await step('original-renamed', { oldName });
    try {
      await engine.renameContainer(newId, c.name);
    } catch (e) {
      deps.metrics?.containerRenameFailures.inc();
      return rollback(`the swap failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    await step('swapped');
    await engine.stopContainer(c.id, stopTimeout(d));
    await step('original-stopped');
  }
  await engine.removeContainer(c.id);
  await retireVolumes(engine, c.mounts.map((m) => m.volume)).catch((e) => deps.log('warn', 'Could not remove an old secret volume', { reason: String(e) }));
  await step('original-removed');
  return { ...(downtimeMs === undefined ? {} : { downtimeMs }), healthMs: health.ms };
}

/** The image the original runs: by its name when the name still means that image, else by id. */
async function sameImage(engine: Engine, d: ManagedContainer['details']): Promise<string> {
  const name = d.Config?.Image;
  if (!name || name.startsWith('sha256:')) return d.Image;
  const current = await engine.imageConfig(name).catch(() => undefined);
  return current?.id === d.Image ? name : d.Image;
}

/** The container's own stop timeout (compose's stop_grace_period), else the engine's default. */
export function stopTimeout(d: ManagedContainer['details']): number {
  const t = (d.Config as { StopTimeout?: number } | undefined)?.StopTimeout;
  return typeof t === 'number' && t >= 0 ? t : DEFAULT_STOP_TIMEOUT_S;
}
