// File delivery for dsofile:// and x-dso secrets, with nothing on the host disk: each service gets
// tmpfs-backed named volumes; a tiny holder container keeps them mounted (a tmpfs volume loses its
// content when no running container uses it), and DSO fills them through the holder with the
// Docker API before Compose starts anything, so files exist before any entrypoint runs.
//
// Why not putArchive straight into a container's tmpfs mount: the engine then writes the file
// UNDER the mount, into the container's layer on the host disk (moby/moby#22020).
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { DsoError } from '../errors.ts';
import { LABEL_MANAGED, LABEL_MOUNT_DIR, LABEL_PROJECT, LABEL_ROLE, LABEL_SERVICE } from '../compose/labels.ts';
import type { SecretPlan } from '../compose/plan.ts';
import type { Engine } from './engine.ts';
import { HOLDER_SHA256, HOLDER_VERSION, holderBinary, type HolderArch } from './holder-binary.ts';
import { buildTar, type TarEntry } from './tar.ts';

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

export function holderName(project: string, volumes: readonly string[]): string {
  const h = createHash('sha256').update([...volumes].sort().join('\n')).digest('hex').slice(0, 8);
  return `dso-holder-${project}-${h}`;
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

async function ensureHolderImage(engine: Engine, arch: HolderArch, progress: Progress): Promise<string> {
  const ref = holderImageRef(arch);
  if (await engine.imageExists(ref)) return ref;
  progress(`Creating the secret holder image ${ref} (a ${holderBinary(arch).length}-byte static binary, no registry needed)`);
  const tar = buildTar([{ path: HOLDER_PATH.slice(1), type: 'file', mode: 0o755, uid: 0, gid: 0, data: holderBinary(arch) }]);
  const [repo, tag] = ref.split(':') as [string, string];
  await engine.importImage(tar, repo, tag, [`ENTRYPOINT ["${HOLDER_PATH}"]`, `LABEL ${LABEL_MANAGED}=true`]);
  return ref;
}

async function ensureVolume(engine: Engine, project: string, service: string, dir: string, volume: string): Promise<boolean> {
  const existing = await engine.inspectVolume(volume);
  if (existing) {
    if (existing.driver !== 'local' || existing.options.type !== 'tmpfs') {
      throw new DsoError('NOT_RAM_BACKED', `volume ${volume} exists but is not a tmpfs volume, so secrets written to it could reach disk`, {
        hint: `remove it (docker volume rm ${volume}) and run the command again; DSO will create it in RAM`,
      });
    }
    return false;
  }
  await engine.createVolume(
    volume,
    { type: 'tmpfs', device: 'tmpfs', o: `size=${VOLUME_SIZE},mode=0755` },
    { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: 'secret-volume', [LABEL_PROJECT]: project, [LABEL_SERVICE]: service, [LABEL_MOUNT_DIR]: dir },
  );
  return true;
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
  try {
    const arch = await engineArch(engine);
    const image = await ensureHolderImage(engine, arch, progress);
    for (const m of mounts) {
      if (await ensureVolume(engine, plan.project, m.service, m.dir, m.volume)) created.volumes.push(m.volume);
    }
    const volumes = mounts.map((m) => m.volume);
    const name = holderName(plan.project, volumes);
    let holder = await engine.inspectContainer(name);
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
        const tar = buildTar(volumeEntries(m.dir, files, value));
        try {
          await engine.putArchive(holder.id, `${VOLUME_ROOT_IN_HOLDER}/${m.volume}`, tar);
        } finally {
          tar.fill(0);
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

function volumeEntries(dir: string, files: readonly SecretPlan['services'][number]['files'][number][], value: (name: string) => Uint8Array): TarEntry[] {
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
  return entries;
}

/** Removes a project's holders and secret volumes (after `compose down`). Returns what stayed. */
export async function removeProjectSecrets(engine: Engine, project: string, opts: { keepHolder?: string; keepVolumes?: readonly string[] } = {}): Promise<string[]> {
  const holders = await engine.listContainers([`${LABEL_ROLE}=holder`, `${LABEL_PROJECT}=${project}`]);
  for (const h of holders) if (h.name !== opts.keepHolder) await engine.removeContainer(h.id);
  const volumes = await engine.listVolumes([`${LABEL_ROLE}=secret-volume`, `${LABEL_PROJECT}=${project}`]);
  const left: string[] = [];
  for (const v of volumes) {
    if (opts.keepVolumes?.includes(v.name)) continue;
    try {
      await engine.removeVolume(v.name);
    } catch {
      left.push(v.name); // still used by a container that outlived `down`
    }
  }
  return left;
}
