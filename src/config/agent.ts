// The `agent:` and `defaults:` sections of dso.yaml (the seed's schema, plus the settings the
// agent needs that the seed left implicit: socket, metrics, queue, stale serving, rotation
// concurrency). Durations and sizes are parsed strictly here, so the rest of DSO sees numbers.
import * as v from 'valibot';
import { DEFAULT_AGENT_SOCKET } from './find.ts';
import { DURATION_FORM, MAX_TIMER_FORM, MAX_TIMER_MS, parseDuration, parseSize, SIZE_FORM } from './units.ts';

/** A duration; `max` for those the agent waits with a timer (see MAX_TIMER_MS). */
const duration = (key: string, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.string(`${key} must be ${DURATION_FORM}, in quotes or not`),
    v.check((s) => (parseDuration(s) ?? -1) >= min, `${key} must be ${DURATION_FORM}${min > 0 ? ', above zero' : ''}`),
    v.check((s) => (parseDuration(s) ?? 0) <= max, `${key} must be ${MAX_TIMER_FORM}`),
    v.transform((s) => parseDuration(s)!),
  );
const timer = (key: string, min = 1) => duration(key, min, MAX_TIMER_MS);
const size = (key: string) =>
  v.pipe(
    v.union([v.string(), v.number()], `${key} must be ${SIZE_FORM}`),
    v.transform((x) => (typeof x === 'number' ? (Number.isSafeInteger(x) ? x : undefined) : parseSize(x))),
    v.check((n): n is number => n !== undefined && n > 0, `${key} must be ${SIZE_FORM}, above zero`),
    v.transform((n) => n as number),
  );
const integer = (key: string, min: number, max: number) =>
  v.pipe(v.number(`${key} must be a whole number from ${min} to ${max}`), v.integer(`${key} must be a whole number from ${min} to ${max}`), v.minValue(min, `${key} must be at least ${min}`), v.maxValue(max, `${key} must be at most ${max}`));
const bool = (key: string) => v.boolean(`${key} must be true or false`);
const strict = <T extends v.ObjectEntries>(section: string, entries: T) =>
  v.strictObject(entries, `${section} takes the keys ${Object.keys(entries).join(', ')}`);

export const STRATEGIES = ['rolling', 'restart', 'signal', 'none'] as const;
export type Strategy = (typeof STRATEGIES)[number];
const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGWINCH'] as const;
const strategy = (key: string) => v.picklist(STRATEGIES, `${key} must be one of ${STRATEGIES.join(', ')}`);
const signal = (key: string) => v.picklist(SIGNALS, `${key} must be one of ${SIGNALS.join(', ')}`);

const socketPath = v.pipe(v.string('path must be an absolute path'), v.startsWith('/', 'path must be an absolute path'));
const groupName = v.pipe(v.string('group must be a group name'), v.regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'group must be a group name like dso'));
const socketMode = v.pipe(
  v.string('mode must be octal in quotes, like "0660"'),
  v.regex(/^0?[0-7]{3}$/, 'mode must be octal in quotes, like "0660"'),
  v.transform((s) => parseInt(s, 8)),
  v.check((m) => (m & 0o007) === 0, 'mode must not give access to others (the last digit must be 0)'),
);

// A second socket that alone serves what changes containers (rotate, the webhook trigger), so
// that a group may read secrets without being able to recreate containers, or the reverse.
// Without a group it is the agent's user's alone (0600); with one, open to that group (0660).
const adminSocketSchema = v.pipe(
  strict('agent.socket.admin', { path: v.optional(socketPath), group: v.optional(groupName), mode: v.optional(socketMode) }),
  v.check((a) => a.path !== undefined, 'admin needs path: the absolute path of the admin socket, like /run/dso/admin.sock'),
  v.transform((a) => ({ ...a, path: a.path!, mode: a.mode ?? (a.group === undefined ? 0o600 : 0o660) })),
);

const socketSchema = strict('agent.socket', {
  path: v.optional(socketPath, DEFAULT_AGENT_SOCKET),
  group: v.optional(groupName),
  mode: v.optional(socketMode, '0660'),
  admin: v.optional(adminSocketSchema),
});

/** HOST:PORT, IPv6 hosts in brackets. */
export const TCP_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const address = (key: string, example: string) => v.pipe(v.string(`${key} must be HOST:PORT`), v.regex(TCP_ADDRESS, `${key} must be HOST:PORT, like ${example}`));

/** `unix:/PATH`: a unix socket, created as the API socket is (owner-only, then group and mode). */
export const UNIX_ADDRESS = /^unix:(\/.*)$/;
const metricsSchema = v.pipe(
  strict('agent.metrics', {
    enabled: v.optional(bool('enabled'), true),
    address: v.optional(
      v.union([v.pipe(v.string(), v.regex(UNIX_ADDRESS)), address('address', '127.0.0.1:9090')], 'address must be HOST:PORT, like 127.0.0.1:9090, or unix:/ABSOLUTE/PATH'),
      '127.0.0.1:9090',
    ),
    // For a unix: address only, as for agent.socket.
    group: v.optional(groupName),
    mode: v.optional(socketMode),
  }),
  v.forward(
    v.check((m) => UNIX_ADDRESS.test(m.address) || (m.group === undefined && m.mode === undefined), 'group and mode apply to a unix:/PATH address only (a TCP port has no owner)'),
    ['address'],
  ),
);

const logSchema = strict('agent.log', {
  level: v.optional(v.picklist(['debug', 'info', 'warn', 'error'], 'level must be debug, info, warn or error'), 'info'),
  format: v.optional(v.picklist(['json', 'text'], 'format must be json or text'), 'json'),
});

const watchSchema = strict('agent.watch', {
  polling_interval: v.optional(timer('polling_interval'), '5m'),
  debounce_window: v.optional(timer('debounce_window', 0), '5s'),
  queue_size: v.optional(integer('queue_size', 1, 1_000_000), 2000),
  webhook_secret_env: v.optional(v.pipe(v.string('webhook_secret_env must name an environment variable'), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'webhook_secret_env must name an environment variable'))),
  // Unset: no TCP listener; the webhook route is served on the agent's socket only.
  webhook_address: v.optional(address('webhook_address', '127.0.0.1:9443')),
});

const healthSchema = strict('agent.health_check', {
  timeout: v.optional(timer('timeout'), '30s'),
  retries: v.optional(integer('retries', 0, 100), 3),
  interval: v.optional(timer('interval'), '2s'),
});

const cacheSchema = strict('agent.cache', {
  ttl: v.optional(duration('ttl'), '1h'),
  max_cache_size: v.optional(size('max_cache_size'), '100Mi'),
  max_secret_size: v.optional(size('max_secret_size'), '10Mi'),
  max_stale: v.optional(duration('max_stale', 0), '24h'),
});

const rotationSchema = strict('agent.rotation', {
  strategy: v.optional(strategy('strategy'), 'restart'),
  // The whole rotation of one container: a stop, a health check of up to health_check.timeout,
  // the swap. The seed's 30s would leave no room beyond a health check of its own 30s default.
  timeout: v.optional(timer('timeout'), '2m'),
  // A failed rotation is always undone (the original keeps serving): keeping an unhealthy new
  // container instead would take the service down for good, and recovery after a crash undoes
  // anyway. `false` is refused rather than silently ignored.
  rollback_on_failure: v.optional(
    v.pipe(
      bool('rollback_on_failure'),
      v.check((b) => b, 'false is not supported: a rotation whose new container fails is always undone, so that the original keeps serving; remove the key (or set it to true)'),
    ),
    true,
  ),
  concurrency: v.optional(integer('concurrency', 1, 64), 4),
  jitter: v.optional(timer('jitter', 0), '2s'),
});

export const agentSchema = v.pipe(
  strict('agent', {
    state_dir: v.optional(v.pipe(v.string('state_dir must be an absolute path'), v.startsWith('/', 'state_dir must be an absolute path')), '/var/lib/dso'),
    socket: v.optional(socketSchema, {}),
    metrics: v.optional(metricsSchema, {}),
    log: v.optional(logSchema, {}),
    watch: v.optional(watchSchema, {}),
    health_check: v.optional(healthSchema, {}),
    cache: v.optional(cacheSchema, {}),
    rotation: v.optional(rotationSchema, {}),
  }),
  v.forward(
    v.check((a) => a.cache.max_secret_size <= a.cache.max_cache_size, 'max_secret_size must not exceed max_cache_size'),
    ['cache', 'max_secret_size'],
  ),
  v.forward(
    v.check((a) => a.socket.admin === undefined || a.socket.admin.path !== a.socket.path, 'its path must differ from agent.socket.path: the admin socket is a second socket'),
    ['socket', 'admin'],
  ),
  v.forward(
    v.check((a) => {
      const path = UNIX_ADDRESS.exec(a.metrics.address)?.[1];
      return path === undefined || (path !== a.socket.path && path !== a.socket.admin?.path);
    }, 'a unix: address must differ from agent.socket.path and agent.socket.admin.path'),
    ['metrics', 'address'],
  ),
  v.forward(
    v.check((a) => a.watch.webhook_address === undefined || a.watch.webhook_secret_env !== undefined, 'webhook_address needs webhook_secret_env: requests from the network are accepted only when signed with that key'),
    ['watch', 'webhook_address'],
  ),
);

export const defaultsSchema = strict('defaults', {
  rotation: v.optional(
    strict('defaults.rotation', {
      strategy: v.optional(strategy('strategy')),
      signal: v.optional(signal('signal'), 'SIGHUP'),
    }),
    {},
  ),
});

export type AgentConfig = v.InferOutput<typeof agentSchema>;
export type DefaultsConfig = v.InferOutput<typeof defaultsSchema>;

/** The agent settings when dso.yaml has no `agent:` section. */
export function defaultAgentConfig(): AgentConfig {
  return v.parse(agentSchema, {});
}
