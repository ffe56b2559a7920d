// The compiled agent: it serves its socket with the documented mode, answers status and
// metrics, resolves for `docker dso up` in Cloud Mode (the CLI holds no provider credential),
// reloads on SIGHUP, refuses a second agent on the same socket, replaces a stale socket, and on
// SIGTERM stops and removes its socket.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, run, sandbox, writeFiles, type Sandbox, projectOf } from './support.ts';

const TOKEN = canary('agent-token');
const AGENT_PASS = 'agent-only-passphrase-123';
let sb: Sandbox;
let agent: ReturnType<typeof Bun.spawn>;
let socket: string;
let metricsUrl: string;
const logs: string[] = [];

function config(extra = ''): string {
  return `providers:
  home:
    type: local
    path: ${join(sb.dir, 'agent-vault', 'vault.enc')}
    passphrase_env: AGENT_VAULT_PASS
${extra}`;
}

async function startAgent(configPath: string, sock: string): Promise<{ proc: ReturnType<typeof Bun.spawn>; metrics: string }> {
  const proc = Bun.spawn([DSO_BIN, 'agent', '--config', configPath, '--socket', sock, '--metrics-address', '127.0.0.1:0', '--state-dir', join(sb.dir, 'agent-state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AGENT_VAULT_PASS: AGENT_PASS, DOCKER_HOST },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  let metrics = '';
  const reader = (async () => {
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        logs.push(l);
        const m = /"metrics":"(http:[^"]+)"/.exec(l);
        if (m) metrics = m[1]!;
      }
    }
  })();
  void reader;
  for (let i = 0; i < 100 && !(existsSync(sock) && metrics); i++) await Bun.sleep(50);
  expect(existsSync(sock)).toBe(true);
  return { proc, metrics };
}

beforeAll(async () => {
  sb = sandbox('agent');
  // The agent's own vault, with its own passphrase the CLI never sees.
  const agentHome = { ...sb, env: { ...sb.env, DSO_HOME: join(sb.dir, 'agent-vault'), DSO_PASSPHRASE: AGENT_PASS } };
  expect((await dso(agentHome, ['init'])).code).toBe(0);
  expect((await dso(agentHome, ['secret', 'set', 'app/token'], { input: TOKEN })).code).toBe(0);
  writeFileSync(join(sb.dir, 'agent.yaml'), config());
  socket = join(sb.dir, 'run', 'dso.sock');
  const started = await startAgent(join(sb.dir, 'agent.yaml'), socket);
  agent = started.proc;
  metricsUrl = started.metrics;
});

afterAll(async () => {
  agent?.kill('SIGKILL');
  sb.cleanup();
});

describe('dso agent', () => {
  test('the socket has mode 0660 and answers status', async () => {
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    const status = (await (await fetch('http://agent/v1/status', { unix: socket } as RequestInit)).json()) as any;
    expect(status).toMatchObject({ mode: 'cloud', providers: [{ name: 'home', kind: 'local' }] });
  });

  test('docker dso up in Cloud Mode resolves through the agent', async () => {
    const project = projectOf(sb);
    writeFiles(sb.dir, {
      'compose.yaml': `services:\n  app:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n      TOKEN_FILE: dsofile://home:app/token\n`,
    });
    // The CLI has neither the provider's passphrase nor a vault: only the agent can answer.
    const env = { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket, DSO_PASSPHRASE: '' };
    try {
      const up = await dso(sb, ['up', '-d'], { env });
      expect(up.code, up.stderr).toBe(0);
      expect(await dockerOk(['exec', `${project}-app-1`, 'sh', '-c', 'cat "$TOKEN_FILE"'])).toBe(TOKEN);
      expect(up.stderr).not.toContain(TOKEN);
    } finally {
      await dso(sb, ['down', '-t', '1'], { env });
    }
    const missing = await dso(sb, ['up', '-d'], { env: { ...env, DSO_AGENT_SOCKET: join(sb.dir, 'no.sock') } });
    expect(missing.code).toBe(11);
    expect(missing.stderr).toContain('cannot reach the DSO agent');
  });

  test('metrics are served, with the documented names and no value', async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(text).toContain('dso_cache_entries');
    expect(text).toContain('dso_provider_request_duration_seconds_count{provider="home",method="get"}');
    expect(text).not.toContain(TOKEN);
  });

  test('logs are JSON lines without the value', () => {
    expect(logs.length).toBeGreaterThan(0);
    for (const l of logs) expect(() => JSON.parse(l)).not.toThrow();
    expect(logs.join('\n')).not.toContain(TOKEN);
  });

  test('status --json in Cloud Mode shows the agent, its providers and cache; the human form says the same', async () => {
    const env = { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket };
    const r = await dso(sb, ['status', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ mode: 'cloud', modeReason: 'chosen with DSO_MODE', agent: { socket, reachable: true, status: { providers: [{ name: 'home', state: 'ready' }] } }, docker: { reachable: true } });
    expect(report.agent.status.cache.entries).toBeGreaterThanOrEqual(1);
    const human = await dso(sb, ['status'], { env });
    expect(human.stdout).toContain('cloud mode');
    expect(human.stdout).toContain('home (local, worker): healthy');
    expect(human.stdout).not.toContain(TOKEN);
    const down = await dso(sb, ['status', '--json'], { env: { ...env, DSO_AGENT_SOCKET: join(sb.dir, 'none.sock') } });
    expect(JSON.parse(down.stdout).agent.reachable).toBe(false);
    expect(down.code).toBe(11); // AGENT_UNREACHABLE: a script can tell, the report is printed anyway
  });

  test('doctor in Cloud Mode: the agent, its socket\'s mode, and each provider\'s login through it', async () => {
    const env = { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket };
    const r = await dso(sb, ['doctor', '--json'], { env });
    const report = JSON.parse(r.stdout);
    const byId = (id: string) => report.checks.find((c: { id: string }) => c.id === id);
    expect(r.code, r.stdout).toBe(0);
    expect(report.mode).toBe('cloud');
    expect(byId('agent')).toMatchObject({ status: 'pass' });
    expect(byId('permissions.socket')).toMatchObject({ status: 'pass' });
    expect(byId('permissions.socket').detail).toContain('0660');
    expect(byId('provider.home')).toMatchObject({ status: 'pass' });
    expect(byId('rotations')).toMatchObject({ status: 'pass', detail: 'none under way' });
    expect(byId('vault')).toBeUndefined(); // the CLI's vault is not what Cloud Mode needs
    expect(r.stdout).not.toContain(TOKEN);
    const down = await dso(sb, ['doctor', '--json'], { env: { ...env, DSO_AGENT_SOCKET: join(sb.dir, 'none.sock') } });
    expect(down.code).toBe(1);
    const agentCheck = JSON.parse(down.stdout).checks.find((c: { id: string }) => c.id === 'agent');
    expect(agentCheck).toMatchObject({ status: 'fail' });
    expect(agentCheck.fix).toContain('system enable');
  });

  test('status --watch redraws in place every 2 s and stops cleanly on Ctrl-C', async () => {
    const proc = Bun.spawn([DSO_BIN, 'status', '--watch'], { env: { ...sb.env, DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket }, stdout: 'pipe', stderr: 'pipe' });
    await Bun.sleep(2600);
    proc.kill('SIGINT');
    expect(await proc.exited).toBe(0);
    const out = await new Response(proc.stdout).text();
    // Two frames, each starting at the cursor home, never a full clear between them.
    expect(out.split('\x1b[H').length - 1).toBe(2);
    expect(out.match(/\x1b\[2J/g)?.length).toBe(1);
    expect(out).toContain('Refreshing every 2 s');
    expect(out.endsWith('\x1b[?25h\n')).toBe(true);
  });

  test('SIGHUP reloads; an invalid file is refused and the running configuration kept', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), 'providers: [not, a, map]\n');
    agent.kill('SIGHUP');
    await Bun.sleep(300);
    expect(logs.some((l) => l.includes('Configuration reload failed'))).toBe(true);
    writeFileSync(join(sb.dir, 'agent.yaml'), config());
    agent.kill('SIGHUP');
    for (let i = 0; i < 40 && !logs.some((l) => l.includes('Configuration reloaded')); i++) await Bun.sleep(50);
    expect(logs.some((l) => l.includes('Configuration reloaded'))).toBe(true);
    const status = await fetch('http://agent/v1/status', { unix: socket } as RequestInit);
    expect(status.status).toBe(200);
  });

  test('a second agent on the same socket is refused', async () => {
    const r = await run([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'agent-state')], { env: { PATH: process.env.PATH ?? '', DOCKER_HOST } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('another agent is already serving');
  });

  test('an agent that cannot serve all it should (metrics port in use, an admin socket another agent serves) exits with the reason and leaves no socket of its own', async () => {
    const busy = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
    const other = join(sb.dir, 'run-b', 'dso.sock');
    try {
      const r = await run([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', other, '--metrics-address', `127.0.0.1:${busy.port}`, '--state-dir', join(sb.dir, 'agent-state-b')], { env: { PATH: process.env.PATH ?? '', DOCKER_HOST, AGENT_VAULT_PASS: AGENT_PASS } });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(String(busy.port));
      expect(existsSync(other)).toBe(false);
    } finally {
      busy.stop(true);
    }
    // The running agent's socket as another agent's admin socket: refused, named, and the
    // running agent's socket left alone.
    writeFileSync(join(sb.dir, 'agent-b.yaml'), config(`agent:\n  socket: { admin: { path: ${socket} } }\n`));
    const r = await run([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent-b.yaml'), '--socket', other, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'agent-state-b')], { env: { PATH: process.env.PATH ?? '', DOCKER_HOST, AGENT_VAULT_PASS: AGENT_PASS } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`another agent is already serving ${socket}`);
    expect(r.stderr).toContain('agent.socket.admin');
    expect(existsSync(other)).toBe(false);
    expect((await fetch('http://agent/v1/health', { unix: socket } as RequestInit)).status).toBe(200);
  });

  test('SIGTERM the moment its socket appears (before start has finished) still stops it in order', async () => {
    // systemd may stop a unit that has only just started: the socket exists before startAgent
    // returns, and a signal then must not kill the process with the socket left behind.
    for (let i = 0; i < 3; i++) {
      const sock = join(sb.dir, 'run', `early-${i}.sock`);
      const proc = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', sock, '--metrics-address', 'off', '--state-dir', join(sb.dir, `early-state-${i}`)], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AGENT_VAULT_PASS: AGENT_PASS, DOCKER_HOST },
        stdout: 'ignore',
        stderr: 'pipe',
      });
      const stderr = new Response(proc.stderr as ReadableStream<Uint8Array>).text();
      const deadline = Date.now() + 20_000;
      while (!existsSync(sock) && Date.now() < deadline && proc.exitCode === null) await Bun.sleep(2);
      expect(existsSync(sock)).toBe(true);
      proc.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
      expect(await stderr).toContain('Agent stopped');
    }
  });

  test('SIGTERM stops it and removes the socket; a stale socket is then replaced', async () => {
    agent.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(logs.some((l) => l.includes('Agent stopped'))).toBe(true);
    // A socket file left behind by a killed agent does not stop the next one.
    const killed = await startAgent(join(sb.dir, 'agent.yaml'), socket);
    killed.proc.kill('SIGKILL');
    await killed.proc.exited;
    expect(existsSync(socket)).toBe(true);
    const next = await startAgent(join(sb.dir, 'agent.yaml'), socket);
    agent = next.proc;
    expect((await fetch('http://agent/v1/health', { unix: socket } as RequestInit)).status).toBe(200);
  });
});
