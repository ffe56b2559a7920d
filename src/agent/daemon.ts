// The agent's composition root: reads dso.yaml, builds the logger, cache, provider hosts,
// metrics, rotation (watcher, queue, executor) and API, serves the unix socket, the metrics port
// and the optional webhook port, reloads on SIGHUP and shuts down on SIGTERM (in-flight requests
// finish, a rotation under way gets its timeout, cached values are zeroed, the socket is removed).
import { chmodSync, chownSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { loadConfig, type DsoConfig } from '../config/load.ts';
import { DsoError } from '../errors.ts';
import { createLogger, type Logger } from '../observe/log.ts';
import { createMetrics } from '../observe/metrics.ts';
import { Redactor } from '../observe/redact.ts';
import { ProviderSet } from '../providers/resolver.ts';
import { VERSION } from '../version.ts';
import { connectEngine } from '../docker/engine.ts';
import { Fingerprinter, loadFingerprintKey } from '../rotation/fingerprint.ts';
import { RotationState } from '../rotation/state.ts';
import { createApi } from './api.ts';
import { SecretCache } from './cache.ts';
import { Rotator } from './rotator.ts';
import { AgentService } from './service.ts';
import { startWebhookServer, type WebhookServer } from './webhook.ts';
import { splitAddress } from '../config/units.ts';
import { makeDirectory } from '../system/files.ts';

export interface AgentOptions {
  configPath: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Overrides agent.socket.path (tests, several agents on one host). */
  socketPath?: string;
  /** Overrides agent.metrics.address; "off" disables the metrics server. */
  metricsAddress?: string;
  /** Overrides agent.state_dir (tests). */
  stateDir?: string;
  write(line: Uint8Array): void;
}

export interface RunningAgent {
  socketPath: string;
  metricsUrl?: string;
  /** Resolves when the agent has stopped. */
  stopped: Promise<void>;
  stop(reason: string): Promise<void>;
  reload(): Promise<boolean>;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const redactor = new Redactor();
  let config = await loadConfig(options.configPath);
  let log: Logger = createLogger({ level: config.agent.log.level, format: config.agent.log.format, redactor, write: options.write });
  let runtime = await buildRuntime(config, options, redactor, log);
  let service = runtime.service;

  const socketPath = options.socketPath ?? config.agent.socket.path;
  await prepareSocket(socketPath);
  const api = () => createApi(service, runtime.rotator);
  let app = api();
  // bind(2) gives the socket the umask's mode, and a connection made before the chmod below
  // outlives it: under a permissive umask (000, 002) anyone could connect in that window. So it
  // is created owner-only, handed to its group, and only then opened to the group.
  const umask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ unix: socketPath, fetch: (req) => app.fetch(req) });
  } finally {
    process.umask(umask);
  }
  if (config.agent.socket.group !== undefined) chownSync(socketPath, -1, groupId(config.agent.socket.group));
  chmodSync(socketPath, config.agent.socket.mode);

  let metricsServer: ReturnType<typeof Bun.serve> | undefined;
  const metricsAddress = options.metricsAddress ?? (config.agent.metrics.enabled ? config.agent.metrics.address : 'off');
  if (metricsAddress !== 'off') {
    const { hostname, port } = splitAddress(metricsAddress);
    metricsServer = Bun.serve({
      hostname,
      port,
      fetch: async (req) => {
        if (new URL(req.url).pathname !== '/metrics') return new Response('see /metrics\n', { status: 404 });
        const registry = service.metrics.registry;
        return new Response(redactor.line(await registry.metrics()), { headers: { 'content-type': registry.contentType } });
      },
    });
  }

  const sweeper = setInterval(() => service.cache.sweep(), 60_000);
  sweeper.unref?.();
  log.info('Agent started', { version: VERSION, socket: socketPath, metrics: metricsServer ? `http://${metricsServer.hostname}:${metricsServer.port}/metrics` : 'off', providers: [...config.providers.keys()], config: options.configPath });
  // Log in to every provider now, in the background: a bad credential shows in the log and in
  // `status` at start, not at the first `docker dso up`.
  void service.checkProviders();
  void runtime.rotator.start();

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let stopping: Promise<void> | undefined;
  const stop = (reason: string) => {
    stopping ??= (async () => {
      log.info('Agent stopping', { reason });
      clearInterval(sweeper);
      // Stop accepting; requests in flight finish (their values were fetched already).
      await server.stop(false);
      metricsServer?.stop(true);
      await closeRuntime(runtime);
      try {
        unlinkSync(socketPath);
      } catch {}
      log.info('Agent stopped');
      resolveStopped();
    })();
    return stopping;
  };

  const reload = async (): Promise<boolean> => {
    let next: DsoConfig;
    try {
      next = await loadConfig(options.configPath);
    } catch (e) {
      log.error('Configuration reload failed; keeping the running configuration', { reason: e instanceof Error ? e.message : String(e) });
      return false;
    }
    const old = runtime;
    const nextLog = createLogger({ level: next.agent.log.level, format: next.agent.log.format, redactor, write: options.write });
    // The old rotation loop stops first (its rotation under way finishes), so that two loops
    // never rotate at once; the new one then recovers and reconciles from the state file.
    await old.rotator.stop();
    old.webhook?.stop();
    let fresh: Runtime;
    try {
      fresh = await buildRuntime(next, options, redactor, nextLog);
    } catch (e) {
      log.error('Configuration reload failed; keeping the running configuration', { reason: e instanceof Error ? e.message : String(e) });
      void old.rotator.start();
      return false;
    }
    config = next;
    log = nextLog;
    runtime = fresh;
    service = fresh.service;
    app = api();
    await old.service.close();
    old.service.fingerprints?.wipe();
    log.info('Configuration reloaded', { providers: [...next.providers.keys()] });
    void service.checkProviders();
    void fresh.rotator.start();
    return true;
  };

  return {
    socketPath,
    ...(metricsServer ? { metricsUrl: `http://${metricsServer.hostname}:${metricsServer.port}/metrics` } : {}),
    stopped,
    stop,
    reload,
  };
}

interface Runtime {
  service: AgentService;
  rotator: Rotator;
  webhook?: WebhookServer;
}

/** Everything a configuration makes: the service (providers, cache, metrics), rotation, the webhook port. */
async function buildRuntime(config: DsoConfig, options: AgentOptions, redactor: Redactor, log: Logger): Promise<Runtime> {
  const stateDir = options.stateDir ?? config.agent.state_dir;
  const key = loadFingerprintKey(stateDir);
  const fingerprints = new Fingerprinter(key);
  key.fill(0); // the Fingerprinter keeps its own copy
  const service = buildService(config, options, redactor, log, fingerprints);
  const engine = await connectEngine(options.env);
  const rotator = new Rotator({
    config,
    service,
    engine,
    state: RotationState.open(stateDir),
    fingerprints,
    log: log.child({ component: 'rotator' }),
    metrics: service.metrics,
    ...(options.env.DSO_TEST_PAUSE_AT ? { pauseAt: options.env.DSO_TEST_PAUSE_AT } : {}),
  });
  const watch = config.agent.watch;
  let webhook: WebhookServer | undefined;
  if (watch.webhook_address) {
    webhook = startWebhookServer({
      address: watch.webhook_address,
      secretEnv: watch.webhook_secret_env,
      env: options.env,
      trigger: async (ids) => ({ accepted: (await rotator.checkSecrets(ids)).checked }),
      log: log.child({ component: 'webhook' }),
    });
  }
  return { service, rotator, ...(webhook ? { webhook } : {}) };
}

async function closeRuntime(r: Runtime): Promise<void> {
  await r.rotator.stop();
  await r.webhook?.stop();
  await r.service.close();
  r.service.fingerprints?.wipe();
}

function buildService(config: DsoConfig, options: AgentOptions, redactor: Redactor, log: Logger, fingerprints: Fingerprinter): AgentService {
  const c = config.agent.cache;
  const cache = new SecretCache({
    ttlMs: c.ttl,
    maxBytes: c.max_cache_size,
    maxSecretBytes: c.max_secret_size,
    maxStaleMs: c.max_stale,
    onStore: (id, value) => redactor.remember(id, value),
    onDrop: (id) => redactor.forget(id),
  });
  const providerLog = log.child({ component: 'provider' });
  const providers = new ProviderSet(config, {
    env: options.env,
    log: (level, message) => providerLog[level](message),
  });
  const metrics = createMetrics({ version: VERSION, cacheStats: () => cache.stats() });
  return new AgentService(config, providers, cache, metrics, log, VERSION, fingerprints);
}

/** Removes a socket file left by an agent that died; refuses to start beside a live one. */
async function prepareSocket(path: string): Promise<void> {
  makeDirectory(dirname(path), 0o755);
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) {
    throw new DsoError('REFUSED', `another agent is already serving ${path}`, { hint: 'stop it first (`sudo docker dso system disable`), or give this one another agent.socket.path' });
  }
  unlinkSync(path);
}

function groupId(name: string): number {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) {
    throw new DsoError('CONFIG_INVALID', `agent.socket.group: there is no group "${name}" on this host`, { hint: `create it (groupadd ${name}) or change agent.socket.group` });
  }
  return gid;
}

