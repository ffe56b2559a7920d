// The agent: and defaults: sections of dso.yaml: the seed's example parses to the expected
// numbers, defaults fill what is absent, and every field refuses bad input with its own message.
import { describe, expect, test } from 'bun:test';
import { parseConfig } from '../../../src/config/load.ts';
import { DsoError } from '../../../src/errors.ts';

const SEED = `
agent:
  watch:
    polling_interval: "5m"
    debounce_window: "5s"
  health_check:
    timeout: "30s"
    retries: 3
    interval: "2s"
  cache:
    ttl: "1h"
    max_cache_size: "100Mi"
    max_secret_size: "10Mi"
  rotation:
    strategy: "restart"
    timeout: "30s"
    rollback_on_failure: true
defaults:
  rotation:
    strategy: "restart"
`;

async function refused(yaml: string): Promise<string> {
  try {
    await parseConfig(yaml, 'dso.yaml');
  } catch (e) {
    expect((e as DsoError).code).toBe('CONFIG_INVALID');
    return (e as DsoError).message;
  }
  throw new Error(`expected ${JSON.stringify(yaml)} to be refused`);
}

test("the seed README's example parses to numbers", async () => {
  const c = await parseConfig(SEED, 'dso.yaml');
  expect(c.agent.watch).toEqual({ polling_interval: 300_000, debounce_window: 5000, queue_size: 2000 });
  expect(c.agent.health_check).toEqual({ timeout: 30_000, retries: 3, interval: 2000 });
  expect(c.agent.cache).toEqual({ ttl: 3_600_000, max_cache_size: 100 * 1024 ** 2, max_secret_size: 10 * 1024 ** 2, max_stale: 86_400_000 });
  expect(c.agent.rotation).toEqual({ strategy: 'restart', timeout: 30_000, rollback_on_failure: true, concurrency: 4, jitter: 2000 });
  expect(c.defaults.rotation).toEqual({ strategy: 'restart', signal: 'SIGHUP' });
  expect(c.maxSecretBytes).toBe(10 * 1024 ** 2);
});

test('an empty file gives the documented defaults', async () => {
  const c = await parseConfig('', 'dso.yaml');
  expect(c.agent.socket).toEqual({ path: '/run/dso/dso.sock', mode: 0o660 });
  expect(c.agent.metrics).toEqual({ enabled: true, address: '127.0.0.1:9090' });
  expect(c.agent.log).toEqual({ level: 'info', format: 'json' });
  // No webhook listener unless asked for.
  expect(c.agent.watch).toEqual({ polling_interval: 300_000, debounce_window: 5000, queue_size: 2000 });
  // The whole rotation of one container: room for a stop and a health check of its full 30 s.
  expect(c.agent.health_check.timeout).toBe(30_000);
  expect(c.agent.rotation).toEqual({ strategy: 'restart', timeout: 120_000, rollback_on_failure: true, concurrency: 4, jitter: 2000 });
  expect(c.providers.size).toBe(0);
});

test('every setting is read', async () => {
  const c = await parseConfig(
    `agent:
  socket: { path: /run/dso/dso.sock, group: docker, mode: "0640" }
  metrics: { enabled: false, address: "[::1]:9191" }
  log: { level: debug, format: text }
  watch: { polling_interval: 1h30m, debounce_window: 0s, queue_size: 5000, webhook_secret_env: DSO_WEBHOOK_SECRET, webhook_address: "10.0.0.5:9443" }
  health_check: { timeout: 1m, retries: 0, interval: 500ms }
  cache: { ttl: 10m, max_cache_size: 1Gi, max_secret_size: 64Ki, max_stale: 0s }
  rotation: { strategy: rolling, timeout: 5m, rollback_on_failure: true, concurrency: 8, jitter: 0s }
defaults:
  rotation: { strategy: signal, signal: SIGUSR1 }
`,
    'dso.yaml',
  );
  expect(c.agent.socket).toEqual({ path: '/run/dso/dso.sock', group: 'docker', mode: 0o640 });
  expect(c.agent.metrics).toEqual({ enabled: false, address: '[::1]:9191' });
  expect(c.agent.log).toEqual({ level: 'debug', format: 'text' });
  expect(c.agent.watch).toEqual({ polling_interval: 5_400_000, debounce_window: 0, queue_size: 5000, webhook_secret_env: 'DSO_WEBHOOK_SECRET', webhook_address: '10.0.0.5:9443' });
  expect(c.agent.health_check).toEqual({ timeout: 60_000, retries: 0, interval: 500 });
  expect(c.agent.cache).toEqual({ ttl: 600_000, max_cache_size: 1024 ** 3, max_secret_size: 65536, max_stale: 0 });
  expect(c.agent.rotation).toEqual({ strategy: 'rolling', timeout: 300_000, rollback_on_failure: true, concurrency: 8, jitter: 0 });
  expect(c.defaults.rotation).toEqual({ strategy: 'signal', signal: 'SIGUSR1' });
});

test('the admin socket and metrics on a unix socket: read with their modes (admin: 0600 alone, 0660 with a group)', async () => {
  const read = async (yaml: string) => (await parseConfig(yaml, 'dso.yaml')).agent;
  expect((await read('agent:\n  socket: { admin: { path: /run/dso/admin.sock } }')).socket.admin).toEqual({ path: '/run/dso/admin.sock', mode: 0o600 });
  expect((await read('agent:\n  socket: { admin: { path: /run/dso/admin.sock, group: ops } }')).socket.admin).toEqual({ path: '/run/dso/admin.sock', group: 'ops', mode: 0o660 });
  expect((await read('agent:\n  socket: { admin: { path: /run/dso/admin.sock, group: ops, mode: "0640" } }')).socket.admin).toEqual({ path: '/run/dso/admin.sock', group: 'ops', mode: 0o640 });
  expect((await read('agent:\n  metrics: { address: "unix:/run/dso/metrics.sock" }')).metrics).toEqual({ enabled: true, address: 'unix:/run/dso/metrics.sock' });
  expect((await read('agent:\n  metrics: { address: "unix:/run/dso/metrics.sock", group: prometheus, mode: "0640" }')).metrics).toEqual({ enabled: true, address: 'unix:/run/dso/metrics.sock', group: 'prometheus', mode: 0o640 });
});

describe('every field refuses bad input, at its line, naming the expected form', () => {
  test.each([
    ['agent:\n  socket: { path: relative.sock }', 'agent.socket.path', 'absolute path'],
    ['agent:\n  socket: { mode: "0666" }', 'agent.socket.mode', 'must not give access to others'],
    ['agent:\n  socket: { mode: 660 }', 'agent.socket.mode', 'octal in quotes'],
    ['agent:\n  socket: { group: "Bad Group" }', 'agent.socket.group', 'group name'],
    ['agent:\n  metrics: { address: "9090" }', 'agent.metrics.address', 'HOST:PORT'],
    ['agent:\n  metrics: { enabled: "yes" }', 'agent.metrics.enabled', 'true or false'],
    ['agent:\n  metrics: { address: "unix:relative.sock" }', 'agent.metrics.address', 'or unix:/ABSOLUTE/PATH'],
    ['agent:\n  metrics: { address: "127.0.0.1:9090", group: dso }', 'agent.metrics.address', 'group and mode apply to a unix:/PATH address only'],
    ['agent:\n  metrics: { address: "unix:/run/dso/m.sock", mode: "0666" }', 'agent.metrics.mode', 'must not give access to others'],
    ['agent:\n  metrics: { address: "unix:/run/dso/dso.sock" }', 'agent.metrics.address', 'must differ from agent.socket.path'],
    ['agent:\n  socket: { admin: { group: ops } }', 'agent.socket.admin', 'admin needs path'],
    ['agent:\n  socket: { admin: { path: /run/dso/dso.sock } }', 'agent.socket.admin', 'must differ from agent.socket.path'],
    ['agent:\n  socket: { admin: { path: /run/dso/a.sock, mode: "0606" } }', 'agent.socket.admin.mode', 'must not give access to others'],
    ['agent:\n  socket: { admin: { path: /run/dso/a.sock, group: "Ops Team" } }', 'agent.socket.admin.group', 'group name'],
    ['agent:\n  socket: { admin: { path: /run/dso/a.sock, user: x } }', 'agent.socket.admin.user', 'agent.socket.admin takes the keys path, group, mode'],
    ['agent:\n  log: { level: verbose }', 'agent.log.level', 'debug, info, warn or error'],
    ['agent:\n  log: { format: xml }', 'agent.log.format', 'json or text'],
    ['agent:\n  watch: { polling_interval: 5 }', 'agent.watch.polling_interval', 'a duration like'],
    ['agent:\n  watch: { polling_interval: 0s }', 'agent.watch.polling_interval', 'above zero'],
    ['agent:\n  watch: { debounce_window: 5 seconds }', 'agent.watch.debounce_window', 'a duration like'],
    ['agent:\n  watch: { queue_size: 0 }', 'agent.watch.queue_size', 'at least 1'],
    ['agent:\n  watch: { queue_size: 2.5 }', 'agent.watch.queue_size', 'whole number'],
    ['agent:\n  watch: { webhook_secret_env: "not a name" }', 'agent.watch.webhook_secret_env', 'environment variable'],
    ['agent:\n  watch: { webhook_secret_env: HOOK, webhook_address: 9443 }', 'agent.watch.webhook_address', 'HOST:PORT'],
    ['agent:\n  watch: { webhook_secret_env: HOOK, webhook_address: "http://0.0.0.0:9443" }', 'agent.watch.webhook_address', 'HOST:PORT, like 127.0.0.1:9443'],
    ['agent:\n  watch: { webhook_address: "127.0.0.1:9443" }', 'agent.watch.webhook_address', 'webhook_address needs webhook_secret_env'],
    ['agent:\n  health_check: { timeout: soon }', 'agent.health_check.timeout', 'a duration like'],
    ['agent:\n  health_check: { retries: -1 }', 'agent.health_check.retries', 'at least 0'],
    ['agent:\n  health_check: { interval: 2 }', 'agent.health_check.interval', 'a duration like'],
    ['agent:\n  cache: { ttl: forever }', 'agent.cache.ttl', 'a duration like'],
    ['agent:\n  cache: { max_cache_size: 100MB }', 'agent.cache.max_cache_size', 'a size like'],
    ['agent:\n  cache: { max_secret_size: 0 }', 'agent.cache.max_secret_size', 'above zero'],
    ['agent:\n  cache: { max_stale: 1d }', 'agent.cache.max_stale', 'a duration like'],
    ['agent:\n  cache: { max_cache_size: 1Mi, max_secret_size: 2Mi }', 'agent.cache.max_secret_size', 'must not exceed max_cache_size'],
    ['agent:\n  rotation: { strategy: blue-green }', 'agent.rotation.strategy', 'rolling, restart, signal, none'],
    ['agent:\n  rotation: { timeout: 30 }', 'agent.rotation.timeout', 'a duration like'],
    ['agent:\n  rotation: { rollback_on_failure: 1 }', 'agent.rotation.rollback_on_failure', 'true or false'],
    // Parsed and then ignored, once: now refused, saying what DSO does instead.
    ['agent:\n  rotation: { rollback_on_failure: false }', 'agent.rotation.rollback_on_failure', 'false is not supported: a rotation whose new container fails is always undone'],
    ['agent:\n  rotation: { concurrency: 100 }', 'agent.rotation.concurrency', 'at most 64'],
    ['agent:\n  rotation: { jitter: lots }', 'agent.rotation.jitter', 'a duration like'],
    ['agent:\n  rotaton: {}', 'agent.rotaton', 'agent takes the keys'],
    ['agent:\n  cache: { size: 1 }', 'agent.cache.size', 'agent.cache takes the keys'],
    ['defaults:\n  rotation: { strategy: sometimes }', 'defaults.rotation.strategy', 'rolling, restart'],
    ['defaults:\n  rotation: { signal: SIGKILL }', 'defaults.rotation.signal', 'SIGHUP'],
    ['defaults:\n  strategy: restart', 'defaults.strategy', 'defaults takes the keys'],
  ])('%s', async (yaml, key, expected) => {
    const msg = await refused(yaml);
    expect(msg).toContain(`dso.yaml:2:`);
    expect(msg).toContain(`${key}: `);
    expect(msg).toContain(expected);
  });
});

test('a secret-looking value in a wrong place is not echoed', async () => {
  const value = 's.VeryRealLookingVaultToken0123456789';
  const msg = await refused(`agent:\n  cache:\n    ttl: "${value}"\n  log:\n    level: "${value}"\n`);
  expect(msg).not.toContain(value);
});
