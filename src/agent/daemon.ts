// The agent's composition root: reads dso.yaml, builds the logger, cache, provider hosts,
// metrics, rotation (watcher, queue, executor) and API, serves the unix socket (and the admin
// socket, if any), metrics (a port or a unix socket) and the optional webhook port, reloads on
// SIGHUP (the new configuration is built while the old one serves, and replaces it only whole)
// and shuts down on SIGTERM (in-flight requests finish, a rotation under way gets its timeout,
// cached values are zeroed, the sockets are removed).
import { unlinkSync } from 'node:fs';
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
import { MAX_SIGNATURE_AGE_MS, startWebhookServer, WebhookKey, type WebhookServer } from './webhook.ts';
import { splitAddress } from '../config/units.ts';
import { TCP_ADDRESS, UNIX_ADDRESS } from '../config/agent.ts';
import { ReplayMemory } from './replay.ts';
import { prepareSocket, serveUnix } from './unix-socket.ts';

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
  /** Writes through whichever logger the agent has now: a reload may change the level and format. */
  const liveLog = (fields: Record<string, unknown>): Logger => ({
    debug: (m, f) => log.child(fields).debug(m, f),
    info: (m, f) => log.child(fields).info(m, f),
    warn: (m, f) => log.child(fields).warn(m, f),
    error: (m, f) => log.child(fields).error(m, f),
    child: (more) => liveLog({ ...fields, ...more }),
  });
  // One memory of the webhook signatures accepted, for the agent's whole life: reloads keep it,
  // and its file in the state directory keeps it across restarts.
  const replayLog = liveLog({ component: 'webhook' });
  const replay = ReplayMemory.open(options.stateDir ?? config.agent.state_dir, { windowMs: MAX_SIGNATURE_AGE_MS, log: (level, message, fields) => replayLog[level](message, fields) });
  let runtime = await buildRuntime(config, options, redactor, log);
  let service = runtime.service;

  const socketPath = options.socketPath ?? config.agent.socket.path;
  // Sockets, the metrics address and the webhook listener's owner are fixed at start (a reload
  // says when they changed); the routes they serve follow the running configuration.
  const admin = config.agent.socket.admin;
  const api = (serves: 'all' | 'read' | 'admin') => createApi(service, runtime.rotator, serves === 'all' || !admin ? { serves: 'all' } : { serves, adminSocket: admin.path });
  let app = api(admin ? 'read' : 'all');
  let adminApp = admin ? api('admin') : undefined;
  const metricsAddress = options.metricsAddress ?? (config.agent.metrics.enabled ? config.agent.metrics.address : 'off');
  const metricsSocket = UNIX_ADDRESS.exec(metricsAddress)?.[1];
  if (metricsAddress !== 'off' && metricsSocket === undefined && !TCP_ADDRESS.test(metricsAddress)) {
    throw new DsoError('USAGE', `--metrics-address must be HOST:PORT, unix:/ABSOLUTE/PATH or off`, { hint: 'for instance 127.0.0.1:9090 or unix:/run/dso/metrics.sock' });
  }
  const metricsFetch = async (req: Request): Promise<Response> => {
    if (new URL(req.url).pathname !== '/metrics') return new Response('see /metrics\n', { status: 404 });
    const registry = service.metrics.registry;
    return new Response(redactor.line(await registry.metrics()), { headers: { 'content-type': registry.contentType } });
  };

  let webhook: Listener | undefined;
  /** The TCP webhook of `c`, if it has one: it triggers checks by whichever runtime is current. */
  const listen = (c: { webhook_address?: string | undefined; webhook_secret_env?: string | undefined }): Listener | undefined => {
    if (c.webhook_address === undefined) return undefined;
    const listening = startWebhookServer({
      address: c.webhook_address,
      secretEnv: c.webhook_secret_env,
      env: options.env,
      replay,
      trigger: async (ids) => ({ accepted: (await runtime.rotator.checkSecrets(ids)).checked }),
      log: liveLog({ component: 'webhook' }),
    });
    return { address: c.webhook_address, secretEnv: c.webhook_secret_env, server: listening };
  };

  let server: ReturnType<typeof Bun.serve> | undefined;
  let adminServer: ReturnType<typeof Bun.serve> | undefined;
  let metricsServer: ReturnType<typeof Bun.serve> | undefined;
  let metricsWhere = 'off';
  /** The socket files this agent made, removed when it stops (or fails to start). */
  const made: string[] = [];
  try {
    await prepareSocket(socketPath, 'agent.socket');
    if (admin) await prepareSocket(admin.path, 'agent.socket.admin');
    if (metricsSocket !== undefined) await prepareSocket(metricsSocket, 'agent.metrics.address');
    server = serveUnix(socketPath, { key: 'agent.socket', mode: config.agent.socket.mode, ...(config.agent.socket.group ? { group: config.agent.socket.group } : {}) }, { fetch: (req) => app.fetch(req) });
    made.push(socketPath);
    if (admin) {
      adminServer = serveUnix(admin.path, { key: 'agent.socket.admin', mode: admin.mode, ...(admin.group ? { group: admin.group } : {}) }, { fetch: (req) => adminApp!.fetch(req) });
      made.push(admin.path);
    }
    if (metricsSocket !== undefined) {
      const m = config.agent.metrics;
      metricsServer = serveUnix(metricsSocket, { key: 'agent.metrics', mode: m.mode ?? 0o660, ...(m.group ? { group: m.group } : {}) }, { fetch: metricsFetch });
      made.push(metricsSocket);
      metricsWhere = `unix:${metricsSocket}`;
    } else if (metricsAddress !== 'off') {
      const { hostname, port } = splitAddress(metricsAddress);
      metricsServer = Bun.serve({ hostname, port, fetch: metricsFetch });
      metricsWhere = `http://${metricsServer.hostname}:${metricsServer.port}/metrics`;
    }
    webhook = listen(config.agent.watch);
  } catch (e) {
    // Nothing is left listening, nor a socket file of this agent behind.
    for (const s of [server, adminServer, metricsServer]) s?.stop(true);
    for (const p of made) rmSocket(p);
    await closeRuntime(runtime);
    throw e;
  }
  const sweeper = setInterval(() => service.cache.sweep(), 60_000);
  sweeper.unref?.();
  log.info('Agent started', { version: VERSION, socket: socketPath, ...(admin ? { admin_socket: admin.path } : {}), metrics: metricsWhere, providers: [...config.providers.keys()], config: options.configPath });
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
      await Promise.all([server?.stop(false), adminServer?.stop(false)]);
      metricsServer?.stop(true);
      await webhook?.server.stop();
      await closeRuntime(runtime);
      for (const p of made) rmSocket(p);
      log.info('Agent stopped');
      resolveStopped();
    })();
    return stopping;
  };

  /**
   * Makes the webhook listener `next` asks for while the running one keeps answering. Unchanged
   * (the usual case), it is kept: it serves whichever runtime is current. On another port, the new
   * one listens first. On the same port, which cannot be bound twice, the old one stops only now
   * (everything else is ready) and listens again if the new one cannot. Returns what to do once
   * the reload is committed; throws, with the old listener answering, when the new cannot listen.
   */
  const handOverWebhook = async (next: DsoConfig): Promise<() => Promise<void>> => {
    const want = next.agent.watch;
    const current = webhook;
    if (current?.address === want.webhook_address && current?.secretEnv === want.webhook_secret_env) return async () => {};
    if (current === undefined || want.webhook_address === undefined || splitAddress(current.address).port !== splitAddress(want.webhook_address).port) {
      const started = listen(want);
      return async () => {
        webhook = started;
        await current?.server.stop();
      };
    }
    // The key is checked first: a variable that is not set leaves the old listener untouched.
    WebhookKey.fromEnv(options.env, want.webhook_secret_env ?? '');
    await current.server.stop();
    try {
      webhook = listen(want);
    } catch (e) {
      try {
        webhook = listen({ webhook_address: current.address, webhook_secret_env: current.secretEnv });
      } catch (again) {
        webhook = undefined;
        log.error('The webhook listener could not listen again on its address: the TCP webhook is down until the next reload', { address: current.address, reason: again instanceof Error ? again.message : String(again) });
      }
      throw e;
    }
    return async () => {};
  };

  const reloadOnce = async (): Promise<boolean> => {
    const failed = (e: unknown) => {
      log.error('Configuration reload failed; keeping the running configuration', { reason: e instanceof Error ? e.message : String(e) });
      return false;
    };
    let next: DsoConfig;
    try {
      next = await loadConfig(options.configPath);
    } catch (e) {
      return failed(e);
    }
    const nextLog = createLogger({ level: next.agent.log.level, format: next.agent.log.format, redactor, write: options.write });
    // Everything the new configuration needs is built while the old one keeps serving (its
    // rotation loop and its webhook included): when anything fails (a state directory that
    // cannot be made, a webhook key that is not set, a port in use), all stays as it was.
    let fresh: Runtime;
    try {
      fresh = await buildRuntime(next, options, redactor, nextLog, runtime);
    } catch (e) {
      return failed(e);
    }
    let commitWebhook: () => Promise<void>;
    try {
      commitWebhook = await handOverWebhook(next);
    } catch (e) {
      await discardRuntime(fresh);
      return failed(e);
    }
    for (const key of ['socket', 'metrics'] as const) {
      if (JSON.stringify(next.agent[key]) !== JSON.stringify(config.agent[key])) log.warn(`agent.${key} changed: it takes effect when the agent restarts`, {});
    }
    // The old rotation loop stops (its rotation under way finishes) before the new one starts,
    // so that two loops never rotate at once; the new one then recovers and reconciles.
    const old = runtime;
    await old.rotator.stop();
    config = next;
    log = nextLog;
    runtime = fresh;
    service = fresh.service;
    app = api(admin ? 'read' : 'all');
    if (admin) adminApp = api('admin');
    await commitWebhook();
    await replay.moveTo(fresh.stateDir);
    await discardRuntime(old);
    log.info('Configuration reloaded', { providers: [...next.providers.keys()] });
    void service.checkProviders();
    void fresh.rotator.start();
    return true;
  };

  let reloading: Promise<boolean> = Promise.resolve(true);
  return {
    socketPath,
    ...(metricsServer && metricsSocket === undefined ? { metricsUrl: metricsWhere } : {}),
    stopped,
    stop,
    // One reload at a time: two SIGHUPs in a row make two reloads, the second after the first.
    reload: () => (reloading = reloading.then(reloadOnce, reloadOnce)),
  };
}

/** The running TCP webhook and what it was made from. */
interface Listener {
  address: string;
  secretEnv: string | undefined;
  server: WebhookServer;
}

interface Runtime {
  service: AgentService;
  rotator: Rotator;
  state: RotationState;
  stateDir: string;
}

/**
 * Everything a configuration makes: the service (providers, cache, metrics) and rotation. Nothing
 * starts here, so it can be built while the previous runtime runs; with the same state directory
 * the two share one RotationState, whose records the old loop keeps writing until it stops.
 */
async function buildRuntime(config: DsoConfig, options: AgentOptions, redactor: Redactor, log: Logger, previous?: Runtime): Promise<Runtime> {
  const stateDir = options.stateDir ?? config.agent.state_dir;
  const key = loadFingerprintKey(stateDir);
  const fingerprints = new Fingerprinter(key);
  key.fill(0); // the Fingerprinter keeps its own copy
  const service = buildService(config, options, redactor, log, fingerprints);
  try {
    const engine = await connectEngine(options.env);
    const state = previous?.stateDir === stateDir ? previous.state : RotationState.open(stateDir);
    const rotator = new Rotator({
      config,
      service,
      engine,
      state,
      fingerprints,
      log: log.child({ component: 'rotator' }),
      metrics: service.metrics,
      ...(options.env.DSO_TEST_PAUSE_AT ? { pauseAt: options.env.DSO_TEST_PAUSE_AT } : {}),
    });
    return { service, rotator, state, stateDir };
  } catch (e) {
    await service.close();
    fingerprints.wipe();
    throw e;
  }
}

/** Closes a runtime that is not (or no longer) the running one; its rotation loop has stopped or never started. */
async function discardRuntime(r: Runtime): Promise<void> {
  await r.service.close();
  r.service.fingerprints?.wipe();
}

async function closeRuntime(r: Runtime): Promise<void> {
  await r.rotator.stop();
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

function rmSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}
