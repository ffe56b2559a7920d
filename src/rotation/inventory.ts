// Observe: what DSO manages on this engine, read from `docker inspect` and the labels DSO and
// Compose put there. Pure where it can be (`describeContainer` turns one inspect into data), so the
// plan built from it is testable without an engine.
import * as v from 'valibot';
import { parseSecretId } from '../compose/references.ts';
import {
  COMPOSE_DEPENDS_ON,
  COMPOSE_NUMBER,
  COMPOSE_ONEOFF,
  COMPOSE_PROJECT,
  COMPOSE_SERVICE,
  LABEL_CONFIG,
  LABEL_ENV_SECRETS,
  LABEL_FILES,
  LABEL_HEALTH_CMD,
  LABEL_HEALTH_HTTP,
  LABEL_MANAGED,
  LABEL_OVERLAP,
  LABEL_RELOADER,
  LABEL_ROLE,
  LABEL_ROTATION,
  LABEL_SIGNAL,
  LABEL_STRATEGY,
  LABEL_VAULT,
  LABEL_VERSIONS,
} from '../compose/labels.ts';
import { STRATEGIES, type Strategy } from '../config/agent.ts';
import type { ContainerDetails, Engine } from '../docker/engine.ts';

export interface FileSpec {
  path: string;
  id: string;
  uid: number;
  gid: number;
  mode: number;
}

export interface ManagedContainer {
  id: string;
  name: string;
  running: boolean;
  /** The engine's health status when the container has a HEALTHCHECK. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  project?: string;
  service?: string;
  /** Compose's container-number label, as written. */
  number?: string;
  /** Services of the same project this one depends on (Compose's depends_on label). */
  dependsOn: string[];
  env: Array<{ variable: string; id: string }>;
  files: FileSpec[];
  /** The DSO secret volumes mounted now, by the directory they are mounted on. */
  mounts: Array<{ dir: string; volume: string }>;
  /** Every secret id the container uses. */
  ids: string[];
  /** Fingerprints of the values it holds, by id, from its labels (see LABEL_VERSIONS). */
  markers: Record<string, string>;
  /** Rotation settings from its labels; undefined means the defaults of dso.yaml. */
  strategy?: Strategy;
  signal?: string;
  /** `dso.reloader=false`: never rotated automatically. */
  optedOut: boolean;
  /**
   * Why DSO cannot rotate it, when its labels name a secret it cannot read (a hand-edited label):
   * such ids are left out of `ids`, so one container cannot make every check fail, and it is skipped.
   */
  damaged?: string;
  /** Whether two instances may run side by side for a moment (rolling), and if not, why. */
  overlap: { ok: boolean; reasons: string[] };
  /** How its health is judged during a rotation. */
  probe: HealthProbe;
  /** Set on containers a rotation created. */
  rotation?: string;
  /** Where its local names came from (a vault id) and its provider references (`agent` or a dso.yaml path). */
  vault?: string;
  config?: string;
  details: ContainerDetails;
}

export type HealthProbe = { kind: 'healthcheck' } | { kind: 'command'; command: string[] } | { kind: 'http'; port: number; path: string } | { kind: 'running' };

const fileList = v.array(
  v.object({
    path: v.pipe(v.string(), v.startsWith('/')),
    id: v.pipe(v.string(), v.minLength(1)),
    uid: v.pipe(v.number(), v.integer(), v.minValue(0)),
    gid: v.pipe(v.number(), v.integer(), v.minValue(0)),
    mode: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0o7777)),
  }),
);
const markerMap = v.record(v.string(), v.string());

function json<T>(text: string | undefined, schema: v.GenericSchema<unknown, T>, fallback: T): T {
  if (!text) return fallback;
  try {
    const r = v.safeParse(schema, JSON.parse(text));
    return r.success ? r.output : fallback;
  } catch {
    return fallback;
  }
}

function pairs(text: string | undefined): Array<{ variable: string; id: string }> {
  if (!text) return [];
  return text
    .split(',')
    .map((p) => p.split('='))
    .filter((p) => p.length >= 2 && p[0])
    .map(([variable, ...rest]) => ({ variable: variable!, id: rest.join('=') }));
}

/** Whether `id` (from a label, so possibly edited by hand) is a reference DSO can parse. */
function readable(id: string): boolean {
  try {
    parseSecretId(id, 'label');
    return true;
  } catch {
    return false;
  }
}

/** The name Compose v2 (`project-service-N`) or v1 (`project_service_N`) gives a container. */
function composeName(project: string, service: string, number: string): string[] {
  return [`${project}-${service}-${number}`, `${project}_${service}_${number}`];
}

/** Why this container cannot run twice at once, if it cannot (empty when it can). */
export function overlapProblems(d: ContainerDetails, secretDirs: ReadonlySet<string>): string[] {
  const labels = d.Config?.Labels ?? {};
  const reasons: string[] = [];
  const name = d.Name.replace(/^\//, '');
  const project = labels[COMPOSE_PROJECT];
  const service = labels[COMPOSE_SERVICE];
  const number = labels[COMPOSE_NUMBER];
  if (project && service && number && !composeName(project, service, number).includes(name)) reasons.push(`it has a fixed name (container_name: ${name})`);
  const bindings = (d.HostConfig?.PortBindings ?? {}) as Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>;
  const published = Object.entries(bindings).flatMap(([port, list]) => (list ?? []).filter((b) => b.HostPort && b.HostPort !== '0').map((b) => `${b.HostIp || '0.0.0.0'}:${b.HostPort}->${port}`));
  if (published.length > 0) reasons.push(`it publishes host port${published.length > 1 ? 's' : ''} ${published.join(', ')}`);
  const networkMode = d.HostConfig?.NetworkMode ?? '';
  if (networkMode === 'host' || networkMode.startsWith('container:') || networkMode.startsWith('service:')) reasons.push(`it uses network_mode ${networkMode}`);
  for (const [net, ep] of Object.entries(d.NetworkSettings?.Networks ?? {})) {
    const ipam = ep.IPAMConfig as { IPv4Address?: string; IPv6Address?: string } | null | undefined;
    if (ipam?.IPv4Address || ipam?.IPv6Address) reasons.push(`it has a fixed address on network ${net}`);
  }
  if ((d.Config as { MacAddress?: string } | undefined)?.MacAddress) reasons.push('it has a fixed MAC address');
  if (labels[LABEL_OVERLAP] !== 'allow') {
    // Two instances writing the same storage at once corrupt it (a database's data directory):
    // shared writable volumes and bind mounts make a container run-once unless the user says not.
    const writable = (d.Mounts ?? []).filter((m) => m.RW && !secretDirs.has(m.Destination)).map((m) => (m.Type === 'volume' ? `volume ${m.Name && /^[0-9a-f]{64}$/.test(m.Name) ? '(anonymous)' : m.Name}` : `${m.Type} ${m.Source}`) + ` at ${m.Destination}`);
    if (writable.length > 0) reasons.push(`it writes to shared storage (${writable.join(', ')}; label ${LABEL_OVERLAP}=allow if two instances may share it)`);
  }
  return reasons;
}

function probeFor(d: ContainerDetails): HealthProbe {
  const labels = d.Config?.Labels ?? {};
  const test = (d.Config as { Healthcheck?: { Test?: string[] } } | undefined)?.Healthcheck?.Test;
  // A HEALTHCHECK from the image shows in State.Health too; the config may say NONE to disable it.
  if ((Array.isArray(test) && test.length > 0 && test[0] !== 'NONE') || (!test && d.State?.Health)) return { kind: 'healthcheck' };
  const cmd = labels[LABEL_HEALTH_CMD];
  if (cmd) {
    let command: string[] = ['sh', '-c', cmd];
    if (cmd.trim().startsWith('[')) {
      const parsed = json(cmd, v.array(v.string()), []);
      if (parsed.length > 0) command = parsed;
    }
    return { kind: 'command', command };
  }
  const http = labels[LABEL_HEALTH_HTTP];
  const m = http ? /^(?:https?:\/\/[^:/]*)?:(\d{1,5})(\/\S*)?$/.exec(http) : null;
  if (m) return { kind: 'http', port: Number(m[1]), path: m[2] ?? '/' };
  return { kind: 'running' };
}

/** One container as rotation sees it. */
export function describeContainer(d: ContainerDetails): ManagedContainer {
  const labels = d.Config?.Labels ?? {};
  const files = json(labels[LABEL_FILES], fileList, []);
  const env = pairs(labels[LABEL_ENV_SECRETS]);
  const dirs = new Set<string>();
  const mounts: Array<{ dir: string; volume: string }> = [];
  for (const m of d.Mounts ?? []) {
    if (m.Type !== 'volume' || !m.Name) continue;
    // DSO's secret volumes are the ones mounted on the directories of the container's secret files.
    if (files.some((f) => f.path.startsWith(`${m.Destination}/`))) {
      dirs.add(m.Destination);
      mounts.push({ dir: m.Destination, volume: m.Name });
    }
  }
  const strategyLabel = labels[LABEL_STRATEGY];
  const strategy = (STRATEGIES as readonly string[]).includes(strategyLabel ?? '') ? (strategyLabel as Strategy) : undefined;
  const dependsOn = (labels[COMPOSE_DEPENDS_ON] ?? '')
    .split(',')
    .map((x) => x.split(':')[0]!)
    .filter(Boolean);
  const overlapReasons = overlapProblems(d, dirs);
  const ids = [...new Set([...env.map((e) => e.id), ...files.map((f) => f.id)])].sort();
  const unreadable = ids.filter((id) => !readable(id));
  const health = d.State?.Health?.Status;
  return {
    id: d.Id,
    name: d.Name.replace(/^\//, ''),
    running: d.State?.Running === true,
    ...(health === 'starting' || health === 'healthy' || health === 'unhealthy' ? { health } : {}),
    ...(labels[COMPOSE_PROJECT] ? { project: labels[COMPOSE_PROJECT] } : {}),
    ...(labels[COMPOSE_SERVICE] ? { service: labels[COMPOSE_SERVICE] } : {}),
    ...(labels[COMPOSE_NUMBER] ? { number: labels[COMPOSE_NUMBER] } : {}),
    dependsOn,
    env,
    files,
    mounts: mounts.sort((a, b) => a.dir.localeCompare(b.dir)),
    ids: ids.filter((id) => !unreadable.includes(id)),
    markers: json(labels[LABEL_VERSIONS], markerMap, {}),
    ...(strategy ? { strategy } : {}),
    ...(labels[LABEL_SIGNAL] ? { signal: labels[LABEL_SIGNAL] } : {}),
    optedOut: labels[LABEL_RELOADER] === 'false',
    ...(unreadable.length > 0 ? { damaged: `its labels ${LABEL_ENV_SECRETS}/${LABEL_FILES} name ${unreadable.length} secret reference(s) DSO cannot read; recreate it with docker dso up` } : {}),
    overlap: { ok: overlapReasons.length === 0, reasons: overlapReasons },
    probe: probeFor(d),
    ...(labels[LABEL_ROTATION] ? { rotation: labels[LABEL_ROTATION] } : {}),
    ...(labels[LABEL_VAULT] ? { vault: labels[LABEL_VAULT] } : {}),
    ...(labels[LABEL_CONFIG] ? { config: labels[LABEL_CONFIG] } : {}),
    details: d,
  };
}

/** Every application container DSO manages (holders and one-off `compose run` containers left out). */
export async function loadManaged(engine: Engine): Promise<ManagedContainer[]> {
  const list = await engine.listContainers([`${LABEL_MANAGED}=true`]);
  const out: ManagedContainer[] = [];
  for (const c of list) {
    if (c.labels[LABEL_ROLE] || c.labels[COMPOSE_ONEOFF] === 'True') continue;
    const d = await engine.inspectDetails(c.id);
    if (d) out.push(describeContainer(d));
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Whether `c` got secret `id` from the same place the caller would give it a new value: a local
 * name from the vault `vaultId`, a provider reference from the same dso.yaml (or the agent).
 * Another vault's `app/token` on the same engine is another secret.
 */
export function sameSource(c: ManagedContainer, id: string, source: { vaultId?: string; config?: string }): boolean {
  if (!c.ids.includes(id)) return false;
  return id.includes(':') ? c.config !== undefined && c.config === source.config : c.vault !== undefined && c.vault === source.vaultId;
}
