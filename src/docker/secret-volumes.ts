// File delivery for dsofile:// and x-dso secrets, with nothing on the host disk: each service gets
// tmpfs-backed named volumes; a tiny holder container keeps them mounted (a tmpfs volume loses its
// content when no running container uses it), and DSO fills them through the holder with the
// Docker API before Compose starts anything, so files exist before any entrypoint runs.
//
// Why not putArchive straight into a container's tmpfs mount: the engine then writes the file
// UNDER the mount, into the container's layer on the host disk (moby/moby#22020).
//
// Every volume and holder is named after its owner (storage-names.ts) and labelled with it; one
// DSO finds under its name is used only when its labels name that same owner, so two projects
// never share secret storage.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { DsoError } from '../errors.ts';
import { COMPOSE_ONEOFF, COMPOSE_PROJECT, COMPOSE_SERVICE, LABEL_GENERATION, LABEL_MANAGED, LABEL_MOUNT_DIR, LABEL_PROJECT, LABEL_ROLE, LABEL_ROTATION, LABEL_SERVICE } from '../compose/labels.ts';
import type { SecretPlan } from '../compose/plan.ts';
import type { ContainerInfo, Engine, VolumeInfo } from './engine.ts';
import { READY_MARKER } from './in-container.ts';
import { HOLDER_SHA256, HOLDER_VERSION, holderBinary, type HolderArch } from './holder-binary.ts';
import { holderName, rotationHolderName, secretVolumeName } from './storage-names.ts';
import { buildTar, type TarEntry } from './tar.ts';

export { holderName } from './storage-names.ts';

const HOLDER_REPO = 'dso-holder';
const HOLDER_PATH = '/dso-holder';
const VOLUME_ROOT_IN_HOLDER = '/v';

/** A ceiling, not a reservation: tmpfs takes memory only for what is written. */
const VOLUME_SIZE = '64m';

export interface Progress {
  (message: string): void;
}

export interface Delivery {
  holder: string;
  /** Undoes what this delivery created (used when a later step fails). */
  rollback(): Promise<void>;
}

export function holderImageRef(arch: HolderArch): string {
  return `${HOLDER_REPO}:${HOLDER_VERSION}-${HOLDER_SHA256[arch].slice(0, 12)}`;
}

export async function engineArch(engine: Engine): Promise<HolderArch> {
  const v = await engine.version();
  if (v.os !== 'linux' || (v.arch !== 'amd64' && v.arch !== 'arm64')) {
    throw new DsoError('REFUSED', `the Docker engine runs ${v.os}/${v.arch}; dsofile:// secrets need a linux/amd64 or linux/arm64 engine`, {
      hint: 'use dso:// for this engine, or run the stack on a Linux engine',
    });
  }
  return v.arch;
}

export async function ensureHolderImage(engine: Engine, arch: HolderArch, progress: Progress): Promise<string> {
  const ref = holderImageRef(arch);
  if (await engine.imageExists(ref)) return ref;
  progress(`Creating the secret holder image ${ref} (a ${holderBinary(arch).length}-byte static binary, no registry needed)`);
  const binary = holderBinary(arch);
  // The same program twice: /dso-holder, the holder's entrypoint, and /dso-bin/dso-holder, which
  // Docker copies into the (empty) bin volume when one is first mounted there (see ensureBinVolume).
  const tar = buildTar([
    { path: HOLDER_PATH.slice(1), type: 'file', mode: 0o755, uid: 0, gid: 0, data: binary },
    { path: 'dso-bin', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'dso-bin/dso-holder', type: 'file', mode: 0o755, uid: 0, gid: 0, data: binary },
  ]);
  const [repo, tag] = ref.split(':') as [string, string];
  await engine.importImage(tar, repo, tag, [`ENTRYPOINT ["${HOLDER_PATH}"]`, `LABEL ${LABEL_MANAGED}=true`]);
  return ref;
}


/**
 * The volume that puts dso-holder inside application containers, for their entrypoint wrapper.
 * Unlike the secret volumes it is on disk (it holds only the public program) so that it is there
 * after a reboot, when the wrapper has to wait for DSO to put the secrets back. One per holder
 * build, shared by every project. It is created by creating a container that mounts it: the
 * engine then makes the volume and copies the image's /dso-bin into it in the same call, so it
 * never exists empty, and nothing has to run to fill it.
 */
export async function ensureBinVolume(engine: Engine, progress: Progress): Promise<string> {
  const arch = await engineArch(engine);
  const name = `dso-bin-${HOLDER_VERSION}-${HOLDER_SHA256[arch].slice(0, 12)}`;
  const labels = { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: 'bin' };
  const existing = await engine.inspectVolume(name);
  if (existing) {
    // Its program becomes the entrypoint of every container with secret files: only DSO's own.
    if (existing.labels[LABEL_MANAGED] !== 'true' || existing.labels[LABEL_ROLE] !== 'bin') {
      throw new DsoError('REFUSED', `volume ${name} exists but DSO did not make it (it lacks the labels ${LABEL_MANAGED}=true and ${LABEL_ROLE}=bin), and its program would start every container that has secret files; nothing was started`, {
        hint: `remove it (docker volume rm ${name}) and run the command again; DSO makes it itself`,
      });
    }
    return name;
  }
  const image = await ensureHolderImage(engine, arch, progress);
  const copier = await engine.createContainer({
    name: `${name}-copy-${process.pid}`,
    Image: image,
    Labels: labels,
    HostConfig: { Mounts: [{ Type: 'volume', Source: name, Target: '/dso-bin', VolumeOptions: { NoCopy: false, Labels: labels } as never }], NetworkMode: 'none' },
  });
  await engine.removeContainer(copier);
  return name;
}

/** Who a secret volume serves: one directory of one service of one project, in one generation. */
interface VolumeOwner {
  project: string;
  service: string;
  dir: string;
  /** `base`, or the rotation that made it. */
  generation: string;
}

function volumeLabels(o: VolumeOwner): Record<string, string> {
  return {
    [LABEL_MANAGED]: 'true',
    [LABEL_ROLE]: 'secret-volume',
    [LABEL_PROJECT]: o.project,
    [LABEL_SERVICE]: o.service,
    [LABEL_MOUNT_DIR]: o.dir,
    [LABEL_GENERATION]: o.generation,
    ...(o.generation === 'base' ? {} : { [LABEL_ROTATION]: o.generation }),
  };
}

function ownerText(labels: Record<string, string>): string {
  if (labels[LABEL_MANAGED] !== 'true' || !labels[LABEL_PROJECT]) return 'no DSO project (it does not carry DSO\'s labels)';
  const parts = [`project "${labels[LABEL_PROJECT]}"`];
  if (labels[LABEL_SERVICE]) parts.push(`service "${labels[LABEL_SERVICE]}"`);
  if (labels[LABEL_MOUNT_DIR]) parts.push(`directory ${labels[LABEL_MOUNT_DIR]}`);
  if (labels[LABEL_ROTATION]) parts.push(`rotation ${labels[LABEL_ROTATION]}`);
  return parts.join(', ');
}

const foreignHint = (kind: 'volume' | 'container', name: string, labels: Record<string, string>) =>
  `DSO never shares secret storage between projects. If nothing needs it any more, remove it (docker ${kind === 'volume' ? 'volume rm' : 'rm -f'} ${name}${labels[LABEL_PROJECT] ? `, or \`docker dso down\` in project "${labels[LABEL_PROJECT]}"` : ''}) and run the command again`;

/**
 * Refuses a volume DSO found under the name it wants for `o` unless its labels name exactly `o`
 * and it is RAM-backed. Observation only: it is called before DSO creates or writes anything.
 */
function checkVolume(existing: VolumeInfo, o: VolumeOwner): void {
  const want = volumeLabels(o);
  if (Object.entries(want).some(([k, v]) => (existing.labels[k] ?? (k === LABEL_GENERATION ? 'base' : undefined)) !== v)) {
    throw new DsoError('REFUSED', `volume ${existing.name} belongs to ${ownerText(existing.labels)}, not to project "${o.project}", service "${o.service}", directory ${o.dir}; nothing was started`, {
      hint: foreignHint('volume', existing.name, existing.labels),
    });
  }
  if (existing.driver !== 'local' || existing.options.type !== 'tmpfs') {
    throw new DsoError('NOT_RAM_BACKED', `volume ${existing.name} exists but is not a tmpfs volume, so secrets written to it could reach disk`, {
      hint: `remove it (docker volume rm ${existing.name}) and run the command again; DSO will create it in RAM`,
    });
  }
}

/** Refuses a container found under a holder's name unless it is this project's holder of these volumes. */
function checkHolder(existing: ContainerInfo, project: string, volumes: readonly string[]): void {
  const l = existing.labels;
  const ours = l[LABEL_MANAGED] === 'true' && l[LABEL_ROLE] === 'holder' && l[LABEL_PROJECT] === project && l[LABEL_ROTATION] === undefined && volumes.every((v) => existing.volumes.includes(v));
  if (!ours) {
    throw new DsoError('REFUSED', `container ${existing.name} is not the holder of project "${project}" that DSO would use under that name (it belongs to ${l[LABEL_ROLE] === 'holder' ? ownerText(l) : 'no DSO project (it is not a DSO holder)'}); nothing was started`, {
      hint: foreignHint('container', existing.name, l),
    });
  }
}

async function createSecretVolume(engine: Engine, volume: string, o: VolumeOwner): Promise<void> {
  await engine.createVolume(volume, { type: 'tmpfs', device: 'tmpfs', o: `size=${VOLUME_SIZE},mode=0755` }, volumeLabels(o));
}

/**
 * Makes the plan's secret files exist in RAM-backed volumes. Values come from `value(name)`,
 * which returns bytes the caller owns; the archive built from them is wiped here.
 */
export async function deliverFiles(
  engine: Engine,
  plan: SecretPlan,
  value: (name: string) => Uint8Array,
  progress: Progress,
): Promise<Delivery | undefined> {
  const mounts = plan.services.flatMap((s) => s.mounts.map((m) => ({ ...m, service: s.service })));
  if (mounts.length === 0) return undefined;
  const created: { volumes: string[]; holder?: string } = { volumes: [] };
  const rollback = async () => {
    if (created.holder) await engine.removeContainer(created.holder).catch(() => {});
    for (const v of created.volumes) await engine.removeVolume(v).catch(() => {});
  };
  // Observe first: whatever DSO finds under its names must be this project's, or nothing happens.
  const arch = await engineArch(engine);
  const missing: typeof mounts = [];
  for (const m of mounts) {
    const existing = await engine.inspectVolume(m.volume);
    if (existing) checkVolume(existing, { project: plan.project, service: m.service, dir: m.dir, generation: 'base' });
    else missing.push(m);
  }
  const volumes = mounts.map((m) => m.volume);
  const name = holderName(plan.project, volumes);
  let holder = await engine.inspectContainer(name);
  if (holder) checkHolder(holder, plan.project, volumes);
  try {
    const image = await ensureHolderImage(engine, arch, progress);
    for (const m of missing) {
      await createSecretVolume(engine, m.volume, { project: plan.project, service: m.service, dir: m.dir, generation: 'base' });
      created.volumes.push(m.volume);
    }
    if (!holder) {
      const id = await engine.createHolderContainer({
        name,
        image,
        labels: { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: 'holder', [LABEL_PROJECT]: plan.project },
        volumes: Object.fromEntries(volumes.map((v) => [v, `${VOLUME_ROOT_IN_HOLDER}/${v}`])),
      });
      created.holder = id;
      holder = { id, name, running: false, image, labels: {}, volumes };
    }
    if (!holder.running) await engine.startContainer(holder.id);
    await verifyRamBacked(engine, holder.id, volumes);
    for (const sp of plan.services) {
      for (const m of sp.mounts) {
        const files = sp.files.filter((f) => f.path.startsWith(`${m.dir}/`));
        if (created.volumes.includes(m.volume)) {
          // A new, empty volume nobody reads yet: one archive, ready marker last.
          const tar = buildTar(volumeEntries(m.dir, files, value));
          try {
            await engine.putArchive(holder.id, `${VOLUME_ROOT_IN_HOLDER}/${m.volume}`, tar);
          } finally {
            tar.fill(0);
          }
        } else {
          // A container may be reading it: each file replaced atomically.
          await publishFiles(engine, m.volume, m.dir, files.map((f) => ({ ...f, id: f.name })), value, holder.id);
        }
        // Containers a rotation replaced mount a newer generation of the volume: refresh it too.
        for (const v of await newerGenerations(engine, plan.project, sp.service, m.dir, m.volume)) {
          await publishFiles(engine, v, m.dir, files.map((f) => ({ ...f, id: f.name })), value);
        }
      }
    }
    progress(`Secret files ready in RAM for ${plan.services.filter((s) => s.mounts.length).map((s) => s.service).join(', ')}`);
    return { holder: name, rollback };
  } catch (e) {
    await rollback();
    throw e;
  }
}

/** A file for a secret volume: where it goes inside the container, who owns it, which secret it holds. */
export interface VolumeFile {
  path: string;
  id: string;
  uid: number;
  gid: number;
  mode: number;
}

export interface Generation {
  /** The new volume for each secret directory. */
  volumes: Map<string, string>;
  holder: string;
  /** Removes the holder, then the volumes (their RAM is freed with the last mount). */
  remove(): Promise<void>;
}

/**
 * A new generation of a container's secret volumes, for a rotation: fresh tmpfs volumes named
 * after the rotation, held by a holder of their own, verified RAM-backed and filled with every
 * file of the container (ready marker last), before any container uses them. The container keeps
 * its old volumes until it is replaced, so a rollback needs nothing restored. `created` is told
 * each object as soon as it exists, so a crash leaves nothing the state does not know about.
 */
export async function prepareGeneration(
  engine: Engine,
  target: { project: string; service: string; rotation: string; dirs: readonly string[] },
  files: readonly VolumeFile[],
  value: (id: string) => Uint8Array,
  created: (names: { volumes: string[]; holder?: string }) => Promise<void>,
  progress: Progress = () => {},
): Promise<Generation> {
  const arch = await engineArch(engine);
  const image = await ensureHolderImage(engine, arch, progress);
  const owner = (dir: string): VolumeOwner => ({ project: target.project, service: target.service, dir, generation: target.rotation });
  const volumes = new Map<string, string>();
  for (const dir of target.dirs) volumes.set(dir, secretVolumeName(target.project, target.service, dir, target.rotation));
  const names = [...volumes.values()];
  const holder = rotationHolderName(target.project, target.service, target.rotation);
  // A new rotation's names are free; anything under them is someone else's, and is neither used
  // (creating a volume that exists returns it as it is) nor removed by this rotation's undo.
  const taken = (kind: 'volume' | 'container', name: string, labels: Record<string, string>) =>
    new DsoError('REFUSED', `${kind} ${name}, which rotation ${target.rotation} of service "${target.service}" would create, exists already (it belongs to ${ownerText(labels)}); nothing was changed`, {
      hint: foreignHint(kind, name, labels),
    });
  for (const volume of names) {
    const existing = await engine.inspectVolume(volume);
    if (existing) throw taken('volume', volume, existing.labels);
  }
  const existingHolder = await engine.inspectContainer(holder);
  if (existingHolder) throw taken('container', holder, existingHolder.labels);
  await created({ volumes: names, holder });
  // Only what this call made goes: never an object that merely has one of these names.
  let holderId: string | undefined;
  const made: string[] = [];
  const remove = async () => {
    if (holderId) await engine.removeContainer(holderId).catch(() => {});
    for (const v of made) await engine.removeVolume(v).catch(() => {});
  };
  try {
    for (const [dir, volume] of volumes) {
      await createSecretVolume(engine, volume, owner(dir));
      made.push(volume);
    }
    holderId = await engine.createHolderContainer({
      name: holder,
      image,
      labels: { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: 'holder', [LABEL_PROJECT]: target.project, [LABEL_ROTATION]: target.rotation },
      volumes: Object.fromEntries(names.map((v) => [v, `${VOLUME_ROOT_IN_HOLDER}/${v}`])),
    });
    await engine.startContainer(holderId);
    await verifyRamBacked(engine, holderId, names);
    for (const [dir, volume] of volumes) {
      const inDir = files.filter((f) => f.path.startsWith(`${dir}/`));
      const tar = buildTar(volumeEntries(dir, inDir.map((f) => ({ ...f, name: f.id })), value));
      try {
        await engine.putArchive(holderId, `${VOLUME_ROOT_IN_HOLDER}/${volume}`, tar);
      } finally {
        tar.fill(0);
      }
    }
    return { volumes, holder, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}

/** The running holder that keeps `volume` mounted (started again if it was stopped), of the volume's own project. */
async function holderOf(engine: Engine, volume: string): Promise<{ id: string }> {
  const project = (await engine.inspectVolume(volume))?.labels[LABEL_PROJECT];
  const holders = project === undefined ? [] : await engine.listContainers([`${LABEL_ROLE}=holder`, `${LABEL_PROJECT}=${project}`]);
  const h = holders.find((x) => x.volumes.includes(volume));
  if (!h) throw new DsoError('DOCKER_API', `no DSO holder keeps the secret volume ${volume} mounted`, { hint: 'run `docker dso up` for its project again' });
  if (!h.running) await engine.startContainer(h.id);
  return { id: h.id };
}

/** Whether a secret volume holds its ready marker (false after a reboot emptied it). */
export async function volumeReady(engine: Engine, volume: string): Promise<boolean> {
  const holder = await holderOf(engine, volume);
  const r = await engine.exec(holder.id, [HOLDER_PATH, 'check', `${VOLUME_ROOT_IN_HOLDER}/${volume}/${READY_MARKER}`]);
  return r.exitCode === 0;
}

/**
 * The one staging directory of every secret volume. A publish that was cut short (DSO killed
 * between the copy and the rename) leaves its files there, in RAM and visible in the container;
 * the next publish into the volume overwrites them and publishes them with its own, so they do
 * not stay for ever, as they would under a random name. They are the values of that unfinished
 * publish, never older than what the volume holds: a later publish would have taken them.
 */
const STAGING = '.dso-staging';

/** Publishes into one volume, one at a time (they share its staging directory), per engine. */
const publishing = new WeakMap<Engine, Map<string, Promise<unknown>>>();

function oneAtATime<T>(engine: Engine, volume: string, fn: () => Promise<T>): Promise<T> {
  const queues = publishing.get(engine) ?? new Map<string, Promise<unknown>>();
  publishing.set(engine, queues);
  const next = (queues.get(volume) ?? Promise.resolve()).then(fn, fn);
  const settled = next.catch(() => {});
  queues.set(volume, settled);
  void settled.then(() => {
    if (queues.get(volume) === settled) queues.delete(volume);
  });
  return next;
}

/**
 * Replaces files in a volume that a running container uses, so that the application never reads
 * a partial file: the new files are copied into a staging directory inside the same volume (the
 * same tmpfs), then `dso-holder publish` renames each over its old version, which the kernel
 * does atomically. `dir` is where the volume is mounted in the application's container.
 */
export async function publishFiles(engine: Engine, volume: string, dir: string, files: readonly VolumeFile[], value: (id: string) => Uint8Array, holderId?: string): Promise<void> {
  const holder = holderId === undefined ? await holderOf(engine, volume) : { id: holderId };
  return oneAtATime(engine, volume, () => publishStaged(engine, volume, dir, files, value, holder.id));
}

async function publishStaged(engine: Engine, volume: string, dir: string, files: readonly VolumeFile[], value: (id: string) => Uint8Array, holderId: string): Promise<void> {
  const entries = volumeEntries(dir, files.map((f) => ({ ...f, name: f.id })), value).map((e) => ({ ...e, path: `${STAGING}/${e.path}` }));
  const tar = buildTar([{ path: STAGING, type: 'dir', mode: 0o700, uid: 0, gid: 0 }, ...entries]);
  const root = `${VOLUME_ROOT_IN_HOLDER}/${volume}`;
  try {
    await engine.putArchive(holderId, root, tar);
  } finally {
    tar.fill(0);
  }
  const r = await engine.exec(holderId, [HOLDER_PATH, 'publish', `${root}/${STAGING}`, root]);
  if (r.exitCode !== 0) {
    throw new DsoError('DOCKER_API', `could not publish new secret files into volume ${volume} (dso-holder exited ${r.exitCode}: ${r.output.trim().split('\n').at(-1) ?? ''})`, {
      hint: 'the old files are still in place; run the rotation again',
    });
  }
}

/** The secret volumes the compose model names for a service (generation `base`), by directory. */
export async function baseVolumes(engine: Engine, project: string, service: string): Promise<Array<{ dir: string; volume: string }>> {
  const volumes = await engine.listVolumes([`${LABEL_ROLE}=secret-volume`, `${LABEL_PROJECT}=${project}`, `${LABEL_SERVICE}=${service}`]);
  return volumes.filter((v) => (v.labels[LABEL_GENERATION] ?? 'base') === 'base' && v.labels[LABEL_MOUNT_DIR]).map((v) => ({ dir: v.labels[LABEL_MOUNT_DIR]!, volume: v.name }));
}

/**
 * For each secret volume the compose model names (generation `base`), the newer generation that
 * every container of its service mounts instead, when rotations left them all on one a holder
 * keeps. Named in the model, it keeps Compose 2.3x and later from recreating those containers
 * (they recreate a container whose named volumes are not the model's).
 */
export async function mountedGenerations(engine: Engine, plan: SecretPlan): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const services = plan.services.filter((sp) => sp.mounts.length > 0);
  if (services.length === 0) return out;
  // At most three calls whatever the number of services, one without rotations: `up` waits.
  const generations = (await engine.listVolumes([`${LABEL_ROLE}=secret-volume`, `${LABEL_PROJECT}=${plan.project}`])).filter((v) => (v.labels[LABEL_GENERATION] ?? 'base') !== 'base');
  if (generations.length === 0) return out;
  const held = new Set((await engine.listContainers([`${LABEL_ROLE}=holder`, `${LABEL_PROJECT}=${plan.project}`])).flatMap((h) => h.volumes));
  const rotated = generations.filter((v) => held.has(v.name));
  const all = (await engine.listContainers([`${COMPOSE_PROJECT}=${plan.project}`])).filter((c) => c.labels[COMPOSE_ONEOFF] !== 'True');
  for (const sp of services) {
    const containers = all.filter((c) => c.labels[COMPOSE_SERVICE] === sp.service);
    if (containers.length === 0) continue;
    for (const m of sp.mounts) {
      const candidates = new Set(rotated.filter((v) => v.labels[LABEL_SERVICE] === sp.service && v.labels[LABEL_MOUNT_DIR] === m.dir).map((v) => v.name));
      const mounted = new Set(containers.map((c) => c.volumes.find((v) => candidates.has(v)) ?? m.volume));
      const [only] = mounted;
      if (mounted.size === 1 && only !== undefined && only !== m.volume) out.set(m.volume, only);
    }
  }
  return out;
}

/** The rotation-made volumes of a service's secret directory that a holder keeps (so a container may use them). */
async function newerGenerations(engine: Engine, project: string, service: string, dir: string, base: string): Promise<string[]> {
  const volumes = await engine.listVolumes([`${LABEL_ROLE}=secret-volume`, `${LABEL_PROJECT}=${project}`, `${LABEL_SERVICE}=${service}`]);
  const held = new Set((await engine.listContainers([`${LABEL_ROLE}=holder`, `${LABEL_PROJECT}=${project}`])).flatMap((h) => h.volumes));
  return volumes.filter((v) => v.name !== base && v.labels[LABEL_MOUNT_DIR] === dir && v.labels[LABEL_GENERATION] !== 'base' && held.has(v.name)).map((v) => v.name);
}

/**
 * Removes secret volumes a rotation made once no container uses them, with their holders. The
 * `base` volumes named by the compose model stay: Compose mounts them into the containers it
 * creates (a scale-up), and `docker dso up` refreshes them before it does.
 */
export async function retireVolumes(engine: Engine, volumes: readonly string[]): Promise<void> {
  for (const name of volumes) {
    const v = await engine.inspectVolume(name);
    if (!v || v.labels[LABEL_GENERATION] === 'base' || v.labels[LABEL_GENERATION] === undefined) continue;
    const users = await engine.listContainers([`${LABEL_MANAGED}=true`]);
    if (users.some((c) => !c.labels[LABEL_ROLE] && c.volumes.includes(name))) continue;
    for (const h of users.filter((c) => c.labels[LABEL_ROLE] === 'holder' && c.volumes.includes(name))) await engine.removeContainer(h.id);
    await engine.removeVolume(name);
  }
}

/** Removes the holders and volumes a rotation made (recovery, or its own rollback). */
export async function removeRotationObjects(engine: Engine, rotation: string): Promise<void> {
  for (const h of await engine.listContainers([`${LABEL_ROTATION}=${rotation}`, `${LABEL_ROLE}=holder`])) await engine.removeContainer(h.id);
  for (const v of await engine.listVolumes([`${LABEL_ROTATION}=${rotation}`])) await engine.removeVolume(v.name).catch(() => {});
}

/**
 * Proves, end to end, that this engine gives DSO RAM-backed secret storage: a throwaway tmpfs
 * volume held by a holder container, checked with statfs from inside the engine host's mount
 * namespace, then removed. Used by `doctor --level full`. Throws NOT_RAM_BACKED or DOCKER_*.
 */
export async function probeRamBacked(engine: Engine, progress: Progress): Promise<{ filesystem: string }> {
  const arch = await engineArch(engine);
  const image = await ensureHolderImage(engine, arch, progress);
  const suffix = createHash('sha256').update(`${process.pid}-${Date.now()}-${Math.random()}`).digest('hex').slice(0, 12);
  const volume = `dso-doctor-${suffix}`;
  const labels = { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: 'doctor-probe' };
  let holder: string | undefined;
  try {
    await engine.createVolume(volume, { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,mode=0700' }, labels);
    holder = await engine.createHolderContainer({ name: volume, image, labels, volumes: { [volume]: `${VOLUME_ROOT_IN_HOLDER}/${volume}` } });
    await engine.startContainer(holder);
    await verifyRamBacked(engine, holder, [volume]);
    return { filesystem: 'tmpfs' };
  } finally {
    if (holder) await engine.removeContainer(holder).catch(() => {});
    await engine.removeVolume(volume).catch(() => {});
  }
}

/** Asks the holder itself to statfs each volume, so the check sees the engine host's real mounts. */
async function verifyRamBacked(engine: Engine, holderId: string, volumes: string[]): Promise<void> {
  const paths = volumes.map((v) => `${VOLUME_ROOT_IN_HOLDER}/${v}`);
  const res = await engine.exec(holderId, [HOLDER_PATH, 'check', ...paths]);
  if (res.exitCode !== 0) {
    const bad = res.output
      .split('\n')
      .filter((l) => l && !/ (tmpfs|ramfs)$/.test(l))
      .join('; ');
    throw new DsoError('NOT_RAM_BACKED', `secret storage is not RAM-backed on the engine host (${bad || `check exited ${res.exitCode}`}); nothing was written`, {
      hint: 'DSO needs the local volume driver with tmpfs support (any Linux engine has it); check `docker info` and remove DSO volumes with `docker dso down`',
    });
  }
}

/**
 * The archive entries for one secret volume: the files under `dir`, their parent directories, and
 * last the ready marker, which `dso-holder await` (the wrapper of application entrypoints) waits
 * for: a volume emptied by a reboot holds no marker until DSO has filled it again.
 */
function volumeEntries(dir: string, files: ReadonlyArray<{ name: string; path: string; uid: number; gid: number; mode: number }>, value: (name: string) => Uint8Array): TarEntry[] {
  const dirs = new Set<string>();
  const entries: TarEntry[] = [];
  for (const f of files) {
    const rel = posix.relative(dir, f.path);
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
      }
    }
  }
  for (const f of files) {
    entries.push({ path: posix.relative(dir, f.path), type: 'file', mode: f.mode, uid: f.uid, gid: f.gid, data: value(f.name) });
  }
  entries.push({ path: READY_MARKER, type: 'file', mode: 0o444, uid: 0, gid: 0, data: new Uint8Array(0) });
  return entries;
}

/**
 * Removes a project's holders and secret volumes that nothing needs: after `compose down` all of
 * them; after `up`, those of an earlier run. Found by their labels, never by name, so storage
 * named the way older versions named it goes too. A volume a live container still mounts stays
 * (a rotated container's new generation, a container that outlived `down`), and so does one
 * running holder for it: without one the volume would lose its files the next time that
 * container restarts. Returns the volumes kept that way (or that the engine would not remove).
 *
 * Before names carried a hash, two projects could share one volume (project shop_web with
 * service api, project shop with service web_api: both `dso_shop_web_api`), labelled for
 * whichever came first and held by both projects' holders. It holds this project's values too,
 * so once nothing mounts it, it goes with this project's storage whatever its label says, and so
 * does another project's holder that holds nothing else.
 */
export async function removeProjectSecrets(engine: Engine, project: string, opts: { keepHolder?: string; keepVolumes?: readonly string[] } = {}): Promise<string[]> {
  const managed = await engine.listContainers([`${LABEL_MANAGED}=true`]);
  const inUse = new Set(managed.filter((c) => !c.labels[LABEL_ROLE]).flatMap((c) => c.volumes));
  const holders = managed.filter((c) => c.labels[LABEL_ROLE] === 'holder');
  const ours = holders.filter((h) => h.labels[LABEL_PROJECT] === project);
  const labelled = await engine.listVolumes([`${LABEL_ROLE}=secret-volume`, `${LABEL_PROJECT}=${project}`]);
  const mine = new Set([...labelled.map((v) => v.name), ...ours.flatMap((h) => h.volumes)]);
  const keep = new Set(opts.keepVolumes);
  const needed = (v: string) => inUse.has(v) || keep.has(v);
  const remaining = new Set(holders);
  const heldElsewhere = (h: ContainerInfo, v: string) => [...remaining].some((o) => o !== h && o.volumes.includes(v) && (o.running || o.name === opts.keepHolder));
  const removable = (h: ContainerInfo) => {
    if (h.name === opts.keepHolder) return false;
    if (h.labels[LABEL_PROJECT] === project) return h.volumes.every((v) => !needed(v) || heldElsewhere(h, v));
    return h.volumes.length > 0 && h.volumes.every((v) => mine.has(v) && !needed(v));
  };
  for (const h of holders) {
    if (removable(h)) {
      await engine.removeContainer(h.id);
      remaining.delete(h);
    } else if (h.labels[LABEL_PROJECT] === project && h.name !== opts.keepHolder && h.volumes.some((v) => !needed(v))) {
      // It holds a volume a container still mounts, and others nobody needs: a holder of just the
      // first takes its place (started before this one goes, so that volume stays mounted), and
      // the others, with their values, leave RAM now rather than at the next `down`.
      const still = h.volumes.filter(needed);
      const name = holderName(project, still);
      if (await engine.inspectContainer(name)) continue;
      const id = await engine.createHolderContainer({ name, image: h.image, labels: h.labels, volumes: Object.fromEntries(still.map((v) => [v, `${VOLUME_ROOT_IN_HOLDER}/${v}`])) });
      await engine.startContainer(id);
      await engine.removeContainer(h.id);
      remaining.delete(h);
      remaining.add({ ...h, id, name, running: true, volumes: still });
    }
  }
  const left: string[] = [];
  for (const v of mine) {
    if (keep.has(v)) continue;
    if (inUse.has(v)) {
      left.push(v);
      continue;
    }
    try {
      await engine.removeVolume(v);
    } catch {
      left.push(v); // mounted by something DSO does not manage
    }
  }
  return left;
}
