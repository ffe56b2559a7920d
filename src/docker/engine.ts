// The narrow slice of the Docker Engine API that DSO uses, behind an interface we own, with a
// dockerode adapter loaded only when a command needs the engine.
import { Readable } from 'node:stream';
import { DsoError } from '../errors.ts';
import { modemOptions, resolveEndpoint, type Env } from './endpoint.ts';

export interface EngineVersion {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

export interface VolumeInfo {
  name: string;
  driver: string;
  options: Record<string, string>;
  labels: Record<string, string>;
}

export interface ContainerInfo {
  id: string;
  name: string;
  running: boolean;
  image: string;
  labels: Record<string, string>;
  volumes: string[];
}

export interface ContainerSpec {
  name: string;
  image: string;
  cmd?: string[];
  labels: Record<string, string>;
  /** Named volumes: volume name -> mount point. */
  volumes: Record<string, string>;
}

/** The engine's full description of a container, as `docker inspect` gives it (for recreating it). */
export type ContainerDetails = import('dockerode').ContainerInspectInfo;
/** What creating a container takes, as the Engine API's create call has it. */
export type ContainerCreateSpec = import('dockerode').ContainerCreateOptions;

export interface ImageConfig {
  id: string;
  entrypoint: string[];
  cmd: string[];
  user?: string;
  healthcheck: boolean;
}

/** One line of the engine's event stream (`docker events`), as far as DSO reads it. */
export interface EngineEvent {
  type: string;
  action: string;
  id: string;
  attributes: Record<string, string>;
  /** Nanoseconds since the epoch, as the engine stamps it. */
  timeNano: number;
}

export interface Engine {
  readonly host: string;
  ping(): Promise<void>;
  version(): Promise<EngineVersion>;
  /** The engine host's clock (from `docker info`), and its data root. */
  info(): Promise<{ systemTime: Date; dataRoot: string }>;
  imageExists(ref: string): Promise<boolean>;
  imageUser(ref: string): Promise<string | undefined>;
  importImage(tar: Uint8Array, repo: string, tag: string, changes: string[]): Promise<void>;
  inspectVolume(name: string): Promise<VolumeInfo | undefined>;
  createVolume(name: string, driverOpts: Record<string, string>, labels: Record<string, string>): Promise<void>;
  removeVolume(name: string): Promise<void>;
  listVolumes(labelFilters: string[]): Promise<VolumeInfo[]>;
  inspectContainer(nameOrId: string): Promise<ContainerInfo | undefined>;
  listContainers(labelFilters: string[]): Promise<ContainerInfo[]>;
  createHolderContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  removeContainer(id: string): Promise<void>;
  exec(id: string, cmd: string[]): Promise<{ exitCode: number; output: string }>;
  putArchive(id: string, path: string, tar: Uint8Array): Promise<void>;
  /** `docker inspect` of a container, whole; undefined when there is none by that name or id. */
  inspectDetails(nameOrId: string): Promise<ContainerDetails | undefined>;
  /** An image's entrypoint, command and id; undefined when the image is not on the engine. */
  imageConfig(ref: string): Promise<ImageConfig | undefined>;
  /** Creates a container from a full spec (the name included) and returns its id. */
  createContainer(spec: ContainerCreateSpec): Promise<string>;
  connectNetwork(network: string, containerId: string, endpoint: Record<string, unknown>): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /** Stops gracefully: the container's stop signal, then SIGKILL after `timeoutSeconds`. */
  stopContainer(id: string, timeoutSeconds?: number): Promise<void>;
  killContainer(id: string, signal: string): Promise<void>;
  /**
   * The event stream until `signal` aborts or the connection ends (the caller reconnects).
   * `since` (the engine's form, `SECONDS[.NANOSECONDS]` since the epoch) first replays the events
   * the engine still holds from that time on, so a reconnecting caller misses less.
   */
  events(filters: Record<string, string[]>, signal: AbortSignal, options?: { since?: string }): AsyncIterable<EngineEvent>;
}

export async function connectEngine(env: Env): Promise<Engine> {
  const endpoint = resolveEndpoint(env);
  const { default: Docker } = await import('dockerode');
  let docker: import('dockerode');
  try {
    docker = new Docker(modemOptions(endpoint) as import('dockerode').DockerOptions);
  } catch (e) {
    throw unreachable(endpoint.host, endpoint.source, e);
  }
  return new DockerodeEngine(docker, endpoint.host, endpoint.source);
}

function unreachable(host: string, source: string, cause: unknown): DsoError {
  const code = (cause as NodeJS.ErrnoException)?.code ?? '';
  const why =
    code === 'EACCES'
      ? 'permission denied on the Docker socket'
      : code === 'ENOENT' || code === 'ECONNREFUSED'
        ? 'nothing is listening there'
        : code || (cause as Error)?.message || 'unknown error';
  return new DsoError('DOCKER_UNREACHABLE', `cannot reach the Docker engine at ${host} (from ${source}): ${why}`, {
    hint:
      code === 'EACCES'
        ? 'add your user to the docker group (sudo usermod -aG docker $USER) and log in again'
        : 'start Docker (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a running engine; `docker version` must work',
    cause,
  });
}

class DockerodeEngine implements Engine {
  constructor(
    private readonly docker: import('dockerode'),
    readonly host: string,
    private readonly source: string,
  ) {}

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.translate(what, e);
    }
  }

  private translate(what: string, e: unknown): DsoError {
    if (e instanceof DsoError) return e;
    const status = (e as { statusCode?: number }).statusCode;
    if (status === undefined) return unreachable(this.host, this.source, e);
    const json = (e as { json?: { message?: string } }).json;
    const message = json?.message ?? (e as Error).message ?? `HTTP ${status}`;
    return new DsoError('DOCKER_API', `Docker engine refused to ${what}: ${message}`, {
      hint: 'see the engine message above; `docker info` shows the engine state',
      cause: e,
    });
  }

  async ping(): Promise<void> {
    await this.call('answer a ping', () => this.docker.ping());
  }

  async version(): Promise<EngineVersion> {
    const v = await this.call('report its version', () => this.docker.version());
    return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
  }

  async info(): Promise<{ systemTime: Date; dataRoot: string }> {
    const i = await this.call('report its state', () => this.docker.info());
    return { systemTime: new Date(i.SystemTime), dataRoot: String(i.DockerRootDir ?? '') };
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await this.inspectImage(ref)) !== undefined;
  }

  async imageUser(ref: string): Promise<string | undefined> {
    const img = await this.inspectImage(ref);
    return img?.Config?.User || undefined;
  }

  private async inspectImage(ref: string): Promise<import('dockerode').ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(ref).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.translate(`inspect image ${ref}`, e);
    }
  }

  async importImage(tar: Uint8Array, repo: string, tag: string, changes: string[]): Promise<void> {
    await this.call(`import image ${repo}:${tag}`, async () => {
      const stream = await this.docker.importImage(Readable.from([Buffer.from(tar)]) as never, { repo, tag, changes } as never);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream as unknown as NodeJS.ReadableStream, (err: Error | null, out: Array<{ error?: string }>) => {
          const failed = out?.find((o) => o.error);
          if (err || failed) reject(err ?? new Error(failed!.error));
          else resolve();
        });
      });
    });
  }

  async inspectVolume(name: string): Promise<VolumeInfo | undefined> {
    try {
      const v = await this.docker.getVolume(name).inspect();
      return { name: v.Name, driver: v.Driver, options: v.Options ?? {}, labels: v.Labels ?? {} };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.translate(`inspect volume ${name}`, e);
    }
  }

  async createVolume(name: string, driverOpts: Record<string, string>, labels: Record<string, string>): Promise<void> {
    await this.call(`create volume ${name}`, () =>
      this.docker.createVolume({ Name: name, Driver: 'local', DriverOpts: driverOpts, Labels: labels }),
    );
  }

  async removeVolume(name: string): Promise<void> {
    await this.call(`remove volume ${name}`, () => this.docker.getVolume(name).remove());
  }

  async listVolumes(labelFilters: string[]): Promise<VolumeInfo[]> {
    const res = await this.call('list volumes', () => this.docker.listVolumes({ filters: { label: labelFilters } }));
    return (res.Volumes ?? []).map((v) => ({ name: v.Name, driver: v.Driver, options: (v.Options ?? {}) as Record<string, string>, labels: v.Labels ?? {} }));
  }

  async inspectContainer(nameOrId: string): Promise<ContainerInfo | undefined> {
    try {
      const c = await this.docker.getContainer(nameOrId).inspect();
      return {
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        running: c.State.Running,
        image: c.Config.Image,
        labels: c.Config.Labels ?? {},
        volumes: (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
      };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.translate(`inspect container ${nameOrId}`, e);
    }
  }

  async listContainers(labelFilters: string[]): Promise<ContainerInfo[]> {
    const list = await this.call('list containers', () => this.docker.listContainers({ all: true, filters: { label: labelFilters } }));
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      running: c.State === 'running',
      image: c.Image,
      labels: c.Labels ?? {},
      volumes: (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
    }));
  }

  async createHolderContainer(spec: ContainerSpec): Promise<string> {
    const c = await this.call(`create container ${spec.name}`, () =>
      this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.cmd,
        Labels: spec.labels,
        NetworkDisabled: true,
        HostConfig: {
          Mounts: Object.entries(spec.volumes).map(([Source, Target]) => ({ Type: 'volume', Source, Target })),
          NetworkMode: 'none',
          ReadonlyRootfs: true,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          RestartPolicy: { Name: 'unless-stopped' },
          PidsLimit: 8,
          Memory: 16 * 1024 * 1024,
          LogConfig: { Type: 'none', Config: {} },
        },
      }),
    );
    return c.id;
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (e) {
      // 304: it was running already, which is what the caller wanted.
      if ((e as { statusCode?: number }).statusCode === 304) return;
      throw this.translate(`start container ${id.slice(0, 12)}`, e);
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return;
      throw this.translate(`remove container ${id.slice(0, 12)}`, e);
    }
  }

  async exec(id: string, cmd: string[]): Promise<{ exitCode: number; output: string }> {
    const first = await this.#execOnce(id, cmd);
    // runc sometimes fails to start an exec under load ("OCI runtime exec failed: ... read init-p:
    // connection reset by peer", exit 126; seen on engine 20.10 in the fault tests). The command
    // never ran, so running it again is safe; every command DSO execs is idempotent anyway.
    if (first.exitCode !== 126 || !first.output.includes('OCI runtime exec failed')) return first;
    await Bun.sleep(250);
    return this.#execOnce(id, cmd);
  }

  async #execOnce(id: string, cmd: string[]): Promise<{ exitCode: number; output: string }> {
    return this.call(`run ${cmd[0]} in container ${id.slice(0, 12)}`, async () => {
      const exec = await this.docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      const chunks: Buffer[] = [];
      const sink = new (await import('node:stream')).PassThrough();
      sink.on('data', (c: Buffer) => chunks.push(c));
      this.docker.modem.demuxStream(stream, sink, sink);
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', reject);
      });
      const info = await exec.inspect();
      return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
    });
  }

  async putArchive(id: string, path: string, tar: Uint8Array): Promise<void> {
    await this.call(`copy files into container ${id.slice(0, 12)}`, () =>
      this.docker.getContainer(id).putArchive(Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength), { path }),
    );
  }

  async inspectDetails(nameOrId: string): Promise<ContainerDetails | undefined> {
    try {
      return await this.docker.getContainer(nameOrId).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.translate(`inspect container ${nameOrId}`, e);
    }
  }

  async imageConfig(ref: string): Promise<ImageConfig | undefined> {
    const img = await this.inspectImage(ref);
    if (!img) return undefined;
    const list = (x: unknown) => (Array.isArray(x) ? x.map(String) : typeof x === 'string' ? [x] : []);
    const test = (img.Config as { Healthcheck?: { Test?: string[] } } | undefined)?.Healthcheck?.Test;
    return {
      id: img.Id,
      entrypoint: list(img.Config?.Entrypoint),
      cmd: list(img.Config?.Cmd),
      ...(img.Config?.User ? { user: img.Config.User } : {}),
      healthcheck: Array.isArray(test) && test.length > 0 && test[0] !== 'NONE',
    };
  }

  async createContainer(spec: ContainerCreateSpec): Promise<string> {
    const c = await this.call(`create container ${spec.name ?? ''}`.trim(), () => this.docker.createContainer(spec));
    return c.id;
  }

  async connectNetwork(network: string, containerId: string, endpoint: Record<string, unknown>): Promise<void> {
    await this.call(`connect container ${containerId.slice(0, 12)} to network ${network}`, () => this.docker.getNetwork(network).connect({ Container: containerId, EndpointConfig: endpoint }));
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.call(`rename container ${id.slice(0, 12)} to ${name}`, () => this.docker.getContainer(id).rename({ name }));
  }

  async stopContainer(id: string, timeoutSeconds?: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop(timeoutSeconds === undefined ? {} : { t: timeoutSeconds });
    } catch (e) {
      // 304: already stopped; 404: already gone. Both are what the caller wanted.
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 304 || status === 404) return;
      throw this.translate(`stop container ${id.slice(0, 12)}`, e);
    }
  }

  async killContainer(id: string, signal: string): Promise<void> {
    await this.call(`send ${signal} to container ${id.slice(0, 12)}`, () => this.docker.getContainer(id).kill({ signal }));
  }

  async *events(filters: Record<string, string[]>, signal: AbortSignal, from: { since?: string } = {}): AsyncIterable<EngineEvent> {
    const options = { filters, abortSignal: signal, ...(from.since === undefined ? {} : { since: from.since }) } as unknown as import('dockerode').GetEventsOptions;
    const stream = (await this.call('stream its events', () => this.docker.getEvents(options))) as NodeJS.ReadableStream & { destroy?(): void };
    const onAbort = () => stream.destroy?.();
    signal.addEventListener('abort', onAbort, { once: true });
    // Every stream gets an error handler (platform-facts): an error ends the iteration below.
    stream.on('error', () => {});
    let rest = '';
    try {
      for await (const chunk of stream as AsyncIterable<Buffer | string>) {
        rest += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        let nl: number;
        while ((nl = rest.indexOf('\n')) !== -1) {
          const line = rest.slice(0, nl).trim();
          rest = rest.slice(nl + 1);
          if (!line) continue;
          let raw: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> }; id?: string; timeNano?: number };
          try {
            raw = JSON.parse(line);
          } catch {
            continue;
          }
          yield {
            type: String(raw.Type ?? ''),
            action: String(raw.Action ?? ''),
            id: String(raw.Actor?.ID ?? raw.id ?? ''),
            attributes: raw.Actor?.Attributes ?? {},
            timeNano: Number(raw.timeNano ?? 0),
          };
        }
      }
    } catch (e) {
      // The caller's abort destroys the stream, which ends the iteration with an error: that end
      // was asked for. Any other error (the engine went away) is the caller's to handle.
      if (!signal.aborted) throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.destroy?.();
    }
  }
}
