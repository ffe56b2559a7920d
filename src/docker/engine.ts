// The narrow slice of the Docker Engine API that DSO uses, behind an interface we own, with a
// dockerode adapter loaded only when a command needs the engine.
import { PassThrough, Readable } from 'node:stream';
import { abortableSleep, deadline, untilAborted, type Deadline } from '../abortable.ts';
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

/** How long the calls of a bounded engine view (Engine.bounded) may take. */
export interface CallLimits {
  /**
   * The longest any one call may take; a stop gets its stop timeout on top (the engine waits
   * that long before it kills). Past it the call is abandoned with a DOCKER_API error.
   */
  callMs: number;
  /** Every call ends as soon as this aborts, with its reason (the deadline of a whole rotation). */
  signal?: AbortSignal;
}

export interface ExecOptions {
  /** Stop waiting when this aborts (with its reason); the stream is destroyed. */
  signal?: AbortSignal;
  /** Output kept, at most (default EXEC_OUTPUT_CAP); the rest is read and dropped. */
  maxOutputBytes?: number;
}

/**
 * What an exec keeps of its output by default. Commands DSO runs say a line at most; a health
 * command that prints without end must not grow the agent's memory.
 */
export const EXEC_OUTPUT_CAP = 64 * 1024;

/** The engine's own stop timeout when neither the call nor the container sets one. */
export const DEFAULT_STOP_TIMEOUT_S = 10;

export interface Engine {
  readonly host: string;
  /**
   * The same engine, each of whose calls is abandoned past `limits` (the event stream excepted:
   * it has no end; only opening it is bounded). A view of a view obeys both. The engine itself cannot always be told to stop: an exec'd process runs on
   * (Docker's API cannot kill it), a stop goes on; DSO stops waiting, and closes its connection.
   */
  bounded(limits: CallLimits): Engine;
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
  /** Runs `cmd` in a running container; its output (stdout and stderr) is capped, see ExecOptions. */
  exec(id: string, cmd: string[], options?: ExecOptions): Promise<{ exitCode: number; output: string }>;
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

/** Why a bounded call was abandoned (the caller's own signal brings its own reason). */
function tooSlow(what: string, ms: number): DsoError {
  return new DsoError('DOCKER_API', `the Docker engine did not ${what} within ${seconds(ms)}`, {
    hint: 'the engine is overloaded or hung (`docker info` shows its state); DSO stopped waiting, the engine may still finish it',
  });
}

/** ping, version and info take options (a signal) in dockerode, though its types say not. */
function withSignal<T = unknown>(docker: import('dockerode'), method: 'ping' | 'version' | 'info', abortSignal: AbortSignal | undefined): Promise<T> {
  return (docker[method] as unknown as (o: object) => Promise<T>).call(docker, { abortSignal });
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${Number((ms / 1000).toFixed(1))} s` : `${Math.round(ms / 1000)} s`;
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
    private readonly limits?: CallLimits,
  ) {}

  bounded(limits: CallLimits): Engine {
    const mine = this.limits;
    if (!mine) return new DockerodeEngine(this.docker, this.host, this.source, limits);
    // A view of a view keeps both: the shorter limit, and either signal.
    const signals = [mine.signal, limits.signal].filter((x): x is AbortSignal => x !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    return new DockerodeEngine(this.docker, this.host, this.source, { callMs: Math.min(mine.callMs, limits.callMs), ...(signal ? { signal } : {}) });
  }

  /**
   * Runs one engine call within this view's limits (and `o.signal`). `fn` gets the signal to
   * hand to dockerode, which then closes the request; a call that ignores it is abandoned anyway.
   * Statuses in `o.tolerate` mean "already so" (a 404 to an inspect): undefined, not an error.
   */
  private async call<T>(what: string, fn: (signal: AbortSignal | undefined) => Promise<T>, o: { tolerate?: number[]; extraMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const limit = this.deadline(what, o.extraMs ?? 0, o.signal);
    if (limit?.signal.aborted) {
      limit.clear();
      throw limit.signal.reason;
    }
    try {
      return await (limit ? untilAborted(fn(limit.signal), limit.signal) : fn(undefined));
    } catch (e) {
      if (limit?.signal.aborted) throw limit.signal.reason;
      const status = (e as { statusCode?: number }).statusCode;
      if (status !== undefined && o.tolerate?.includes(status)) return undefined as T;
      throw this.translate(what, e);
    } finally {
      limit?.clear();
    }
  }

  private deadline(what: string, extraMs: number, signal?: AbortSignal): Deadline | undefined {
    if (!this.limits && !signal) return undefined;
    const ms = this.limits ? this.limits.callMs + extraMs : Infinity;
    return deadline(ms, () => tooSlow(what, ms), this.limits?.signal, signal);
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
    await this.call('answer a ping', (abortSignal) => withSignal(this.docker, 'ping', abortSignal));
  }

  async version(): Promise<EngineVersion> {
    const v = await this.call('report its version', (abortSignal) => withSignal<import('dockerode').DockerVersion>(this.docker, 'version', abortSignal));
    return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
  }

  async info(): Promise<{ systemTime: Date; dataRoot: string }> {
    const i = await this.call('report its state', (abortSignal) => withSignal<{ SystemTime: string; DockerRootDir?: string }>(this.docker, 'info', abortSignal));
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
    // dockerode's image inspect takes no signal: a bounded view abandons it all the same.
    return this.call(`inspect image ${ref}`, () => this.docker.getImage(ref).inspect(), { tolerate: [404] });
  }

  async importImage(tar: Uint8Array, repo: string, tag: string, changes: string[]): Promise<void> {
    await this.call(`import image ${repo}:${tag}`, async (abortSignal) => {
      const stream = await this.docker.importImage(Readable.from([Buffer.from(tar)]) as never, { repo, tag, changes, abortSignal } as never);
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
    const v = await this.call(`inspect volume ${name}`, (abortSignal) => this.docker.getVolume(name).inspect({ abortSignal }), { tolerate: [404] });
    return v && { name: v.Name, driver: v.Driver, options: v.Options ?? {}, labels: v.Labels ?? {} };
  }

  async createVolume(name: string, driverOpts: Record<string, string>, labels: Record<string, string>): Promise<void> {
    await this.call(`create volume ${name}`, (abortSignal) =>
      this.docker.createVolume({ Name: name, Driver: 'local', DriverOpts: driverOpts, Labels: labels, abortSignal }),
    );
  }

  async removeVolume(name: string): Promise<void> {
    await this.call(`remove volume ${name}`, (abortSignal) => this.docker.getVolume(name).remove({ abortSignal }));
  }

  async listVolumes(labelFilters: string[]): Promise<VolumeInfo[]> {
    const res = await this.call('list volumes', (abortSignal) => this.docker.listVolumes({ filters: { label: labelFilters }, abortSignal }));
    return (res.Volumes ?? []).map((v) => ({ name: v.Name, driver: v.Driver, options: (v.Options ?? {}) as Record<string, string>, labels: v.Labels ?? {} }));
  }

  async inspectContainer(nameOrId: string): Promise<ContainerInfo | undefined> {
    const c = await this.inspectDetails(nameOrId);
    return (
      c && {
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        running: c.State.Running,
        image: c.Config.Image,
        labels: c.Config.Labels ?? {},
        volumes: (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
      }
    );
  }

  async listContainers(labelFilters: string[]): Promise<ContainerInfo[]> {
    const list = await this.call('list containers', (abortSignal) => this.docker.listContainers({ all: true, filters: { label: labelFilters }, abortSignal }));
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
    return this.createContainer({
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
    });
  }

  async startContainer(id: string): Promise<void> {
    // 304: it was running already, which is what the caller wanted.
    await this.call(`start container ${id.slice(0, 12)}`, (abortSignal) => this.docker.getContainer(id).start({ abortSignal }), { tolerate: [304] });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call(`remove container ${id.slice(0, 12)}`, (abortSignal) => this.docker.getContainer(id).remove({ force: true, abortSignal }), { tolerate: [404] });
  }

  async exec(id: string, cmd: string[], options: ExecOptions = {}): Promise<{ exitCode: number; output: string }> {
    const first = await this.#execOnce(id, cmd, options);
    // runc sometimes fails to start an exec under load ("OCI runtime exec failed: ... read init-p:
    // connection reset by peer", exit 126; seen on engine 20.10 in the fault tests). The command
    // never ran, so running it again is safe; every command DSO execs is idempotent anyway.
    if (first.exitCode !== 126 || !first.output.includes('OCI runtime exec failed')) return first;
    await abortableSleep(250, options.signal);
    return this.#execOnce(id, cmd, options);
  }

  async #execOnce(id: string, cmd: string[], options: ExecOptions): Promise<{ exitCode: number; output: string }> {
    const cap = options.maxOutputBytes ?? EXEC_OUTPUT_CAP;
    return this.call(
      `run ${cmd[0]} in container ${id.slice(0, 12)}`,
      async (abortSignal) => {
        const exec = await this.docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, abortSignal });
        const stream = (await exec.start({ hijack: true, stdin: false, abortSignal })) as NodeJS.ReadWriteStream & { destroy(): void };
        const chunks: Buffer[] = [];
        let kept = 0;
        const sink = new PassThrough();
        // Read to the end, keep the first `cap` bytes: the exit code comes only after the output.
        sink.on('data', (c: Buffer) => {
          if (kept >= cap) return;
          const part = c.subarray(0, cap - kept);
          chunks.push(Buffer.from(part));
          kept += part.length;
        });
        this.docker.modem.demuxStream(stream, sink, sink);
        // Past the deadline the hijacked connection is closed here: nothing else would close it.
        const hangUp = () => stream.destroy();
        abortSignal?.addEventListener('abort', hangUp, { once: true });
        try {
          if (abortSignal?.aborted) hangUp();
          await new Promise<void>((resolve, reject) => {
            stream.on('end', resolve);
            stream.on('close', resolve);
            stream.on('error', reject);
          });
        } finally {
          abortSignal?.removeEventListener('abort', hangUp);
          sink.destroy();
        }
        const info = await exec.inspect({ abortSignal });
        return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
      },
      options.signal ? { signal: options.signal } : {},
    );
  }

  async putArchive(id: string, path: string, tar: Uint8Array): Promise<void> {
    await this.call(`copy files into container ${id.slice(0, 12)}`, (abortSignal) =>
      this.docker.getContainer(id).putArchive(Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength), { path, abortSignal }),
    );
  }

  async inspectDetails(nameOrId: string): Promise<ContainerDetails | undefined> {
    return this.call(`inspect container ${nameOrId}`, (abortSignal) => this.docker.getContainer(nameOrId).inspect({ abortSignal }), { tolerate: [404] });
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
    // A copy: dockerode deletes the signal from the object it is given.
    const c = await this.call(`create container ${spec.name ?? ''}`.trim(), (abortSignal) => this.docker.createContainer({ ...spec, abortSignal } as ContainerCreateSpec));
    return c.id;
  }

  async connectNetwork(network: string, containerId: string, endpoint: Record<string, unknown>): Promise<void> {
    await this.call(`connect container ${containerId.slice(0, 12)} to network ${network}`, (abortSignal) => this.docker.getNetwork(network).connect({ Container: containerId, EndpointConfig: endpoint, abortSignal } as import('dockerode').NetworkConnectOptions));
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.call(`rename container ${id.slice(0, 12)} to ${name}`, (abortSignal) => this.docker.getContainer(id).rename({ name, abortSignal }));
  }

  async stopContainer(id: string, timeoutSeconds?: number): Promise<void> {
    // 304: already stopped; 404: already gone. Both are what the caller wanted. The engine may
    // take the whole stop timeout (then it kills): that much is added to the call's limit.
    await this.call(`stop container ${id.slice(0, 12)}`, (abortSignal) => this.docker.getContainer(id).stop({ ...(timeoutSeconds === undefined ? {} : { t: timeoutSeconds }), abortSignal }), {
      tolerate: [304, 404],
      extraMs: (timeoutSeconds ?? DEFAULT_STOP_TIMEOUT_S) * 1000,
    });
  }

  async killContainer(id: string, signal: string): Promise<void> {
    await this.call(`send ${signal} to container ${id.slice(0, 12)}`, (abortSignal) => this.docker.getContainer(id).kill({ signal, abortSignal }));
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
