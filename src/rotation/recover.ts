// Recovery: every rotation the state file shows as unfinished (DSO or the engine died during it)
// is brought to an end from what the engine shows now, not from what the file hoped: exactly one
// container for the service instance, under its original name, running if it was, and nothing the
// rotation made left over. A rotation is finished forward only when its new container already
// took over (it has the name) or is healthy now; otherwise it is undone, and the caller rotates the
// container again, so that it ends with the newest secret. When the engine shows something no
// rotation could have made (another container holds the name), recovery changes nothing, marks
// the rotation stuck and says why.
import type { ContainerDetails, Engine } from '../docker/engine.ts';
import { removeRotationObjects, retireVolumes } from '../docker/secret-volumes.ts';
import { LABEL_MANAGED, LABEL_ROLE, LABEL_ROTATION } from '../compose/labels.ts';
import { wipeAll } from '../secrets/secret-bytes.ts';
import { refreshBaseVolumes, stopTimeout, type RotationDeps } from './execute.ts';
import { waitHealthy, type HealthSettings } from './health.ts';
import { describeContainer } from './inventory.ts';
import type { RotationRecord, RotationState } from './state.ts';

export interface RecoveryDeps {
  engine: Engine;
  state: RotationState;
  health: HealthSettings;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /**
   * Fresh values, when the caller has them (the agent): a rotation finished forward gives them to
   * the compose model's secret volumes too, as the executor does at its end.
   */
  resolve?: RotationDeps['resolve'];
}

export interface Recovered {
  rotation: string;
  container: string;
  /** forward: the new container kept; undone: the original kept; stuck: nothing changed. */
  result: 'forward' | 'undone' | 'stuck' | 'gone';
  /** The container to rotate again (undone rotations), by id. */
  rotateAgain?: { containerId: string; ids: string[] };
  reason: string;
}

const name = (d: ContainerDetails | undefined) => d?.Name.replace(/^\//, '');

export interface RecoveryOptions {
  /**
   * Which unfinished rotations to end (default: all). The agent leaves out those it is running
   * now: their container's lock would make recovery wait for them.
   */
  only?: (r: RotationRecord) => boolean;
}

export async function recoverRotations(given: RecoveryDeps, options: RecoveryOptions = {}): Promise<Recovered[]> {
  // Each engine call within the health timeout (a stop: plus its stop timeout), as in a rotation.
  const deps: RecoveryDeps = { ...given, engine: given.engine.bounded({ callMs: given.health.timeoutMs }) };
  const out: Recovered[] = [];
  for (const r of deps.state.inProgress()) {
    if (r.status === 'stuck') continue; // waits for a person; status shows why
    if (options.only && !options.only(r)) continue;
    try {
      const done = await deps.state.withContainerLock(r.container.id, async () => {
        // Read again under the lock: the rotation may have been running, and have ended, meanwhile.
        const current = deps.state.get(r.id);
        return current?.status === 'in_progress' ? recoverOne(deps, current) : undefined;
      });
      if (done) out.push(done);
    } catch (e) {
      deps.log('error', 'Recovery of a rotation failed; it will be tried again', { rotation: r.id, container: r.container.name, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  await removeOrphans(deps).catch((e) => deps.log('warn', 'Could not remove what finished rotations left', { reason: e instanceof Error ? e.message : String(e) }));
  return out;
}

/**
 * Objects a rotation made that nothing uses once it is over: a new container that never took
 * over, secret volumes and holders of a rotation whose container did not keep them (a rollback
 * the engine interrupted, a crash before the record). Nothing of a rotation still in progress,
 * and nothing any container mounts, is touched.
 */
async function removeOrphans(deps: RecoveryDeps): Promise<void> {
  const { engine } = deps;
  const active = new Set(deps.state.inProgress().map((r) => r.id));
  const labelled = await engine.listContainers([LABEL_ROTATION]);
  for (const c of labelled) {
    const rotation = c.labels[LABEL_ROTATION]!;
    // A new container that never got its service's name is a shadow left behind.
    if (!active.has(rotation) && !c.labels[LABEL_ROLE] && c.name.includes(`-dso-new-${rotation.slice(-8)}`)) {
      deps.log('warn', 'Removing a new container a finished rotation left', { container: c.name, rotation });
      await engine.removeContainer(c.id);
    }
  }
  const apps = (await engine.listContainers([`${LABEL_MANAGED}=true`])).filter((c) => !c.labels[LABEL_ROLE]);
  const used = new Set(apps.flatMap((c) => c.volumes));
  for (const h of labelled.filter((c) => c.labels[LABEL_ROLE] === 'holder')) {
    if (active.has(h.labels[LABEL_ROTATION]!) || h.volumes.some((v) => used.has(v))) continue;
    await engine.removeContainer(h.id);
  }
  for (const v of await engine.listVolumes([LABEL_ROTATION])) {
    if (active.has(v.labels[LABEL_ROTATION]!) || used.has(v.name)) continue;
    await engine.removeVolume(v.name).catch(() => {}); // still held by a holder in use: kept
  }
}

async function recoverOne(deps: RecoveryDeps, r: RotationRecord): Promise<Recovered> {
  const { engine } = deps;
  const original = await engine.inspectDetails(r.container.id);
  const created = await findNewContainer(engine, r);
  const holder = await engine.inspectDetails(r.container.name);
  const base = { rotation: r.id, container: r.container.name };
  const foreign = holder && holder.Id !== original?.Id && holder.Id !== created?.Id;
  if (foreign) {
    const reason = `another container (${holder.Id.slice(0, 12)}) now has the name ${r.container.name}; DSO did not make it, so it changes nothing`;
    await deps.state.finish(r.id, 'stuck', { reason });
    deps.log('error', 'Rotation needs a person', { rotation: r.id, container: r.container.name, reason });
    return { ...base, result: 'stuck', reason };
  }

  // Forward when the new container has taken over (it has the name and passed its health check:
  // the restart strategy names it at creation), or is healthy now and only the swap is missing.
  const tookOver = created !== undefined && name(created) === r.container.name && r.history.some((h) => h.step === 'healthy');
  // Without the original (an interrupted recovery or the executor removed it already) the new
  // container is all that is left of the service instance: undoing would remove it too.
  if (created && (tookOver || !original || (await healthyNow(deps, created)))) {
    if (name(created) !== r.container.name) {
      if (original && name(original) === r.container.name) await engine.renameContainer(original.Id, r.oldName ?? `${r.container.name}-dso-old-${r.id.slice(-8)}`);
      await engine.renameContainer(created.Id, r.container.name);
    }
    if (r.container.running && !created.State.Running) await engine.startContainer(created.Id);
    if (original) {
      await engine.stopContainer(original.Id, stopTimeout(original));
      await engine.removeContainer(original.Id);
      const oldVolumes = describeContainer(original).mounts.map((m) => m.volume);
      await retireVolumes(engine, oldVolumes).catch(() => {});
    }
    // The interrupted executor did not get to it: else the model's volumes keep the old value
    // (in RAM), for the next container Compose makes from the model.
    await refreshModelVolumes(deps, created.Id);
    const reason = original ? 'the new container had taken over (or was healthy); the rotation was finished' : 'the original was gone, so the new container, the only one left, was kept; the rotation was finished';
    await deps.state.finish(r.id, 'done', { reason });
    deps.log('info', 'Recovered a rotation forward', { rotation: r.id, container: r.container.name });
    return { ...base, result: 'forward', reason };
  }

  // Otherwise undo: the new container (if any) goes, the original gets its name back and runs.
  if (created) await engine.removeContainer(created.Id);
  await removeRotationObjects(engine, r.id);
  if (!original) {
    const reason = 'the original container no longer exists (removed outside DSO); nothing to restore';
    await deps.state.finish(r.id, 'failed', { reason });
    return { ...base, result: 'gone', reason };
  }
  if (name(original) !== r.container.name) await engine.renameContainer(original.Id, r.container.name);
  if (r.container.running && !original.State.Running) await engine.startContainer(original.Id);
  const reason = 'interrupted before the new container took over: undone, the original restored, to be rotated again';
  await deps.state.finish(r.id, 'rolled_back', { reason });
  deps.log('warn', 'Recovered a rotation by undoing it', { rotation: r.id, container: r.container.name });
  return { ...base, result: 'undone', reason, rotateAgain: { containerId: original.Id, ids: r.ids } };
}

/** Best effort, as in the executor: `docker dso up` refreshes these volumes too. */
async function refreshModelVolumes(deps: RecoveryDeps, containerId: string): Promise<void> {
  if (!deps.resolve) return;
  const d = await deps.engine.inspectDetails(containerId);
  const c = d && describeContainer(d);
  if (!c?.project || !c.service || c.files.length === 0) return;
  try {
    const resolved = await deps.resolve([...new Set(c.files.map((f) => f.id))]);
    try {
      await refreshBaseVolumes(deps, c, resolved);
    } finally {
      wipeAll(...resolved.values.values());
    }
  } catch (e) {
    deps.log('warn', 'Could not refresh the compose model\'s secret volume; `docker dso up` will', { container: c.name, reason: e instanceof Error ? e.message : String(e) });
  }
}

/** The container this rotation created: by the id it recorded, else by its label (a crash between create and record). */
async function findNewContainer(engine: Engine, r: RotationRecord): Promise<ContainerDetails | undefined> {
  if (r.newContainerId) {
    const d = await engine.inspectDetails(r.newContainerId);
    if (d) return d;
  }
  const labelled = (await engine.listContainers([`${LABEL_ROTATION}=${r.id}`])).filter((c) => !c.labels[LABEL_ROLE]);
  return labelled[0] ? engine.inspectDetails(labelled[0].id) : undefined;
}

/** A new container counts as healthy only if it is running and passes its probe now. */
async function healthyNow(deps: RecoveryDeps, d: ContainerDetails): Promise<boolean> {
  if (!d.State.Running) return false;
  const c = describeContainer(d);
  const result = await waitHealthy({ engine: deps.engine }, d.Id, c.probe, deps.health);
  return result.ok;
}
