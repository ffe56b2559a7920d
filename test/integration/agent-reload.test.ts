// The compiled agent's reload (SIGHUP) and its TCP webhook, against a Vault backend and the real
// engine: a reload that fails (a state directory that cannot be made, a webhook key variable that
// is not set, a webhook port in use) leaves everything as it was: the webhook answers with its
// key, and the rotation loop still rotates. A reload that succeeds hands the webhook over, on
// the same port (a new key) or another. A signed request is accepted once: a copy is refused
// after a reload and after a restart, and past its 5 minutes by its timestamp.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, projectOf, sandbox, scanForLeaks, waitFor, writeFiles, type Sandbox } from './support.ts';

const HOOK_A = `key-a-${canary('hook')}`;
const HOOK_B = `key-b-${canary('hook')}`;
const VALUES = [canary('v0'), canary('v1'), canary('v2')] as const;
let sb: Sandbox;
let vault: FakeVault;
let token: string;
let agent: ReturnType<typeof Bun.spawn>;
let socket: string;
const log: string[] = [];
let port: number;

/** A port nothing listens on (for a moment). */
function freePort(): number {
  const s = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const p = s.port!;
  s.stop(true);
  return p;
}

function config(o: { address?: string; keyEnv?: string; stateDir?: string } = {}): string {
  return `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  state_dir: ${o.stateDir ?? join(sb.dir, 'state')}
  watch: { polling_interval: 1h, debounce_window: 200ms, webhook_address: "${o.address ?? `127.0.0.1:${port}`}", webhook_secret_env: ${o.keyEnv ?? 'HOOK_A'} }
`;
}

function startAgent(): void {
  agent = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DOCKER_HOST, VAULT_TOKEN: token, HOOK_A, HOOK_B },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) log.push(new TextDecoder().decode(chunk));
  })();
}

const lines = () => log.join('').split('\n');
const tail = () => `agent log tail:\n${lines().slice(-12).join('\n')}`;
const count = (text: string) => lines().filter((l) => l.includes(text)).length;

/** SIGHUP, then the agent's verdict: the log line that says the reload happened or failed. */
async function reload(): Promise<string> {
  const before = count('Configuration reload');
  agent.kill('SIGHUP');
  await waitFor('the reload to finish', async () => count('Configuration reload') > before, { ms: 20_000, context: tail });
  return lines().filter((l) => l.includes('Configuration reload')).at(-1)!;
}

/** A request to the TCP webhook, signed with `key` at `at` (ms). */
async function signed(key: string, body: { secrets: string[] }, options: { at?: number; to?: number; headers?: Record<string, string> } = {}): Promise<{ status: number; json: unknown }> {
  const text = JSON.stringify(body);
  const ts = String(Math.floor((options.at ?? Date.now()) / 1000));
  const headers = options.headers ?? { 'x-dso-timestamp': ts, 'x-dso-signature': `sha256=${createHmac('sha256', key).update(`${ts}.${text}`).digest('hex')}` };
  const r = await fetch(`http://127.0.0.1:${options.to ?? port}/v1/webhook`, { method: 'POST', body: text, headers });
  return { status: r.status, json: await r.json() };
}
/** The headers of a signed request, to send it again. */
const signature = (key: string, body: { secrets: string[] }, at = Date.now()) => {
  const ts = String(Math.floor(at / 1000));
  return { 'x-dso-timestamp': ts, 'x-dso-signature': `sha256=${createHmac('sha256', key).update(`${ts}.${JSON.stringify(body)}`).digest('hex')}` };
};

const worker = () => `${projectOf(sb)}-worker-1`;
const secretInWorker = () => dockerOk(['exec', worker(), 'cat', '/run/secrets/vault/app/db#password']);
const DB = { secrets: ['vault:app/db#password'] };

beforeAll(async () => {
  sb = sandbox('agent-reload');
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  vault.putSecret('app/db', { password: VALUES[0] });
  port = freePort();
  socket = join(sb.dir, 'run', 'dso.sock');
  writeFiles(sb.dir, {
    'agent.yaml': config(),
    'compose.yaml': 'services:\n  worker:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sh", "-c", "trap : HUP; while :; do sleep 1 & wait $$!; done"]\n    environment:\n      DB_FILE: dsofile://vault:app/db#password\n    labels: { dso.strategy: signal }\n',
    'a-file': 'not a directory\n',
  });
  startAgent();
  await waitFor('the agent and its webhook', async () => existsSync(socket) && log.join('').includes('Webhook listening'), { ms: 20_000, context: tail });
  const up = await dso(sb, ['up', '-d'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
  expect(up.code, up.stderr).toBe(0);
  expect(await secretInWorker()).toBe(VALUES[0]);
});

afterAll(async () => {
  await dso(sb, ['down', '-t', '1'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } }).catch(() => {});
  agent?.kill('SIGTERM');
  await agent?.exited;
  vault?.stop();
  sb.cleanup();
});

describe('a reload that fails leaves everything as it was', () => {
  test('a state directory that cannot be made: the webhook answers, and a change it announces is still rotated', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), config({ stateDir: join(sb.dir, 'a-file', 'state') }));
    const verdict = await reload();
    expect(verdict).toContain('Configuration reload failed');
    expect(verdict).toContain('ENOTDIR');
    // The rotation loop of the running configuration still works: a change announced on the
    // socket's webhook route reaches the worker.
    vault.putSecret('app/db', { password: VALUES[1] });
    const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify(DB) } as RequestInit);
    expect(r.status).toBe(202);
    await waitFor('the worker to get the new value', async () => (await secretInWorker()) === VALUES[1], { ms: 30_000, context: tail });
    // And the TCP webhook answers.
    expect(await signed(HOOK_A, { secrets: ['vault:app/unused'] })).toEqual({ status: 202, json: { accepted: 0 } });
  });

  test('a webhook key variable that is not set in the agent\'s environment: the webhook answers with the running key', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), config({ keyEnv: 'HOOK_MISSING' }));
    const verdict = await reload();
    expect(verdict).toContain('Configuration reload failed');
    expect(verdict).toContain('HOOK_MISSING');
    expect((await signed(HOOK_A, DB)).status).toBe(202);
    expect((await signed(HOOK_B, DB)).status).toBe(401);
  });

  test('a webhook port in use: the webhook answers on its port', async () => {
    const other = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('someone else') });
    try {
      writeFileSync(join(sb.dir, 'agent.yaml'), config({ address: `127.0.0.1:${other.port}` }));
      const verdict = await reload();
      expect(verdict).toContain('Configuration reload failed');
      expect(verdict).toContain(`cannot serve the webhook on 127.0.0.1:${other.port}`);
      expect((await signed(HOOK_A, DB)).status).toBe(202);
      expect(await (await fetch(`http://127.0.0.1:${other.port}/v1/webhook`, { method: 'POST' })).text()).toBe('someone else');
    } finally {
      other.stop(true);
    }
  });

  test('a webhook address on the same port that cannot be bound (an address of no interface here): the old one listens again', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), config({ address: `192.0.2.1:${port}` }));
    const verdict = await reload();
    expect(verdict).toContain('Configuration reload failed');
    expect(verdict).toContain(`cannot serve the webhook on 192.0.2.1:${port}`);
    expect((await signed(HOOK_A, DB)).status).toBe(202);
  });
});

describe('a reload that succeeds hands the webhook over', () => {
  test('settings fixed at start (agent.metrics, agent.socket) are said to wait for a restart', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), `${config()}  metrics: { enabled: false }\n`);
    expect(await reload()).toContain('Configuration reloaded');
    expect(lines().some((l) => l.includes('agent.metrics changed: it takes effect when the agent restarts'))).toBe(true);
    expect((await signed(HOOK_A, { secrets: ['vault:app/kept'] })).status).toBe(202);
  });

  test('on the same port with another key: the old key is refused there, the new one accepted', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), config({ keyEnv: 'HOOK_B' }));
    expect(await reload()).toContain('Configuration reloaded');
    expect((await signed(HOOK_A, DB)).status).toBe(401);
    expect((await signed(HOOK_B, DB)).status).toBe(202);
  });

  test('to another port: it answers there, and the old port is closed', async () => {
    const next = freePort();
    writeFileSync(join(sb.dir, 'agent.yaml'), config({ address: `127.0.0.1:${next}`, keyEnv: 'HOOK_B' }));
    expect(await reload()).toContain('Configuration reloaded');
    expect((await signed(HOOK_B, DB, { to: next })).status).toBe(202);
    expect(await fetch(`http://127.0.0.1:${port}/v1/webhook`, { method: 'POST' }).then(() => 'answered', () => 'refused')).toBe('refused');
    port = next;
    // And the rotation loop is the new configuration's: a change still reaches the worker.
    vault.putSecret('app/db', { password: VALUES[2] });
    expect(await signed(HOOK_B, DB, { at: Date.now() + 2000 })).toEqual({ status: 202, json: { accepted: 1 } });
    await waitFor('the worker to get the new value', async () => (await secretInWorker()) === VALUES[2], { ms: 60_000, context: tail });
  });
});

describe('a signed request is accepted once', () => {
  const body = { secrets: ['vault:app/other'] };
  let headers: Record<string, string>;

  test('its copy is refused after a reload', async () => {
    headers = signature(HOOK_B, body);
    const first = await signed(HOOK_B, body, { headers });
    expect(first).toEqual({ status: 202, json: { accepted: 0 } });
    expect(await reload()).toContain('Configuration reloaded');
    expect(await signed(HOOK_B, body, { headers })).toEqual({ status: 202, json: { accepted: 0, duplicate: true } });
    expect(lines().some((l) => l.includes('Ignored a replayed webhook request'))).toBe(true);
  });

  test('its copy is refused after a restart; the memory on disk holds no body, key or signature (0600)', async () => {
    agent.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const file = join(sb.dir, 'state', 'webhook-replay.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('vault:app');
    expect(text).not.toContain(headers['x-dso-signature']!.slice('sha256='.length));
    expect(text).not.toContain(HOOK_B);
    startAgent();
    await waitFor('the agent to listen again', async () => count('Webhook listening') >= 2 && existsSync(socket), { ms: 20_000, context: tail });
    expect(await signed(HOOK_B, body, { headers })).toEqual({ status: 202, json: { accepted: 0, duplicate: true } });
  });

  test('a request signed more than 5 minutes ago is refused by its timestamp, copy or not', async () => {
    expect((await signed(HOOK_B, body, { at: Date.now() - 6 * 60_000 })).status).toBe(401);
  });

  test('nothing of the secret values or the keys reached the state directory or the log', () => {
    const needles = [...VALUES, HOOK_A, HOOK_B];
    expect(scanForLeaks([join(sb.dir, 'state')], needles)).toEqual([]);
    for (const n of needles) expect(log.join('')).not.toContain(n);
  });
});
