// The create call for a container's replacement: the original's full configuration, as `docker
// inspect` reports it, with only what rotation changes: the name, the dso:// variables, the secret
// volumes and a few DSO labels. Every other label is kept, Compose's `com.docker.compose.*`
// included, so `docker compose ps`, `logs` and `down` still see the service. Pure.
import { LABEL_ROTATION } from '../compose/labels.ts';
import type { ContainerCreateSpec, ContainerDetails } from '../docker/engine.ts';

export interface RecreateOptions {
  name: string;
  /**
   * New values of dso:// variables. They are strings because the Engine API takes the create call
   * as JSON; the user chose environment delivery, which the engine stores in the container's
   * configuration anyway (docs/security.md).
   */
  env: ReadonlyMap<string, string>;
  /** The secret volume to mount on each secret directory. */
  volumes: ReadonlyMap<string, string>;
  /** Labels to add or replace (the rotation id, fingerprints). */
  labels: Readonly<Record<string, string>>;
  /** The image to run: the original's image id when its name now points at another image. */
  image: string;
  rotation: string;
}

export interface RecreateSpec {
  spec: ContainerCreateSpec;
  /** Networks beyond the first, connected after create and before start (API < 1.44 takes one). */
  extraNetworks: Array<{ network: string; endpoint: Record<string, unknown> }>;
}

type Json = Record<string, unknown>;

const CONFIG_KEYS = ['Domainname', 'User', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'ExposedPorts', 'Tty', 'OpenStdin', 'StdinOnce', 'Cmd', 'Healthcheck', 'ArgsEscaped', 'Volumes', 'WorkingDir', 'Entrypoint', 'NetworkDisabled', 'MacAddress', 'OnBuild', 'StopSignal', 'StopTimeout', 'Shell'] as const;
const ANONYMOUS_VOLUME = /^[0-9a-f]{64}$/;

export function recreateSpec(d: ContainerDetails, o: RecreateOptions): RecreateSpec {
  const config = (d.Config ?? {}) as unknown as Json;
  const spec: Json = { name: o.name, Image: o.image };
  for (const k of CONFIG_KEYS) if (config[k] !== undefined && config[k] !== null) spec[k] = structuredClone(config[k]);
  // The engine sets the hostname to the container's short id unless one was given: a copy would
  // give the new container the old one's id as its hostname.
  const hostname = config.Hostname as string | undefined;
  if (hostname && hostname !== d.Id.slice(0, 12)) spec.Hostname = hostname;
  spec.Env = replaceEnv((config.Env as string[] | undefined) ?? [], o.env);
  spec.Labels = { ...((config.Labels as Record<string, string> | undefined) ?? {}), ...o.labels, [LABEL_ROTATION]: o.rotation };

  const host = structuredClone((d.HostConfig ?? {}) as unknown as Json);
  host.Mounts = mountsWithVolumes(d, host, o.volumes);
  host.Binds = ((host.Binds as string[] | null | undefined) ?? []).filter((b) => !o.volumes.has(bindTarget(b))) as never;
  if ((host.Binds as string[]).length === 0) delete host.Binds;
  spec.HostConfig = host;

  const networks = Object.entries(d.NetworkSettings?.Networks ?? {});
  const mode = String(host.NetworkMode ?? '');
  const endpoint = (ep: Json): Json => {
    const aliases = ((ep.Aliases as string[] | null | undefined) ?? []).filter((a) => a !== d.Id.slice(0, 12));
    const out: Json = {};
    if (aliases.length > 0) out.Aliases = aliases;
    for (const k of ['IPAMConfig', 'Links', 'DriverOpts']) if (ep[k]) out[k] = structuredClone(ep[k]);
    return out;
  };
  // The first network is the one named by NetworkMode (Compose's primary network); with modes that
  // are not networks (host, none, container:...) there is nothing to attach.
  const attachable = networks.filter(([name]) => !['host', 'none'].includes(name) && !mode.startsWith('container:'));
  const primary = attachable.find(([name]) => name === mode) ?? attachable[0];
  if (primary) spec.NetworkingConfig = { EndpointsConfig: { [primary[0]]: endpoint(primary[1] as unknown as Json) } };
  const extraNetworks = attachable.filter((n) => n !== primary).map(([network, ep]) => ({ network, endpoint: endpoint(ep as unknown as Json) }));
  return { spec: spec as ContainerCreateSpec, extraNetworks };
}

function replaceEnv(env: readonly string[], values: ReadonlyMap<string, string>): string[] {
  const out = env.filter((e) => !values.has(e.slice(0, e.indexOf('=') === -1 ? e.length : e.indexOf('='))));
  for (const [k, v] of values) out.push(`${k}=${v}`);
  return out;
}

function bindTarget(bind: string): string {
  return bind.split(':')[1] ?? '';
}

/**
 * The mounts of the new container: the original's, with the secret directories on their new
 * volumes, plus the anonymous volumes the engine made for the image's VOLUMEs. Those hold data
 * (a database's files when no named volume was given): a new container would otherwise get new,
 * empty ones, as `docker compose up` avoids by passing them on.
 */
function mountsWithVolumes(d: ContainerDetails, host: Json, volumes: ReadonlyMap<string, string>): Json[] {
  const mounts = ((host.Mounts as Json[] | null | undefined) ?? []).map((m) => (volumes.has(String(m.Target)) ? { ...m, Source: volumes.get(String(m.Target)) } : m));
  const targets = new Set(mounts.map((m) => String(m.Target)));
  // A secret directory given as a bind (Compose 2.40 and v1 pass named volumes that way) loses
  // that bind below: it gets its new volume here.
  for (const b of (host.Binds as string[] | null | undefined) ?? []) if (!volumes.has(bindTarget(b))) targets.add(bindTarget(b));
  for (const [dir, volume] of volumes) {
    if (!targets.has(dir)) {
      mounts.push({ Type: 'volume', Source: volume, Target: dir, ReadOnly: true });
      targets.add(dir);
    }
  }
  for (const m of d.Mounts ?? []) {
    if (m.Type === 'volume' && m.Name && ANONYMOUS_VOLUME.test(m.Name) && !targets.has(m.Destination)) {
      mounts.push({ Type: 'volume', Source: m.Name, Target: m.Destination, ReadOnly: !m.RW });
    }
  }
  return mounts;
}
