// `dso status [--json] [--watch]`: what DSO is doing on this host: the mode and why, the agent's
// state in Cloud Mode (providers, cache, queue), and the containers DSO manages. --watch redraws
// every 2 s in place (cursor home, each line cleared at its end: no blank frame, no flicker).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DsoError, exitCodeOf } from '../../errors.ts';
import { LABEL_MANAGED } from '../../compose/labels.ts';
import { VERSION } from '../../version.ts';
import type { CompletionSpec } from '../completion.ts';
import { vaultPath, type Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { table } from '../output.ts';

const FLAGS: FlagSpec[] = [
  { name: 'json', type: 'boolean', description: 'Print JSON (a stable shape, see docs/agent.md)' },
  { name: 'watch', short: 'w', type: 'boolean', description: 'Refresh every 2 seconds until interrupted' },
  { name: 'mode', type: 'string', valueName: 'MODE', choices: ['local', 'cloud'], description: 'local or cloud (default: detected, see docs/agent.md)' },
];

export const completion: CompletionSpec = { flags: FLAGS };

export interface StatusReport {
  mode: 'local' | 'cloud';
  modeReason: string;
  version: string;
  warnings: string[];
  /** When nothing is set up yet: what to run. */
  guidance?: string;
  vault?: { path: string; exists: boolean; sizeBytes?: number; modified?: string };
  agent?: { socket: string; reachable: boolean; error?: string; status?: Record<string, any> };
  docker: { reachable: boolean; error?: string; containers: Array<{ name: string; project?: string; service?: string; running: boolean; secrets: string[] }> };
}

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} status [--json] [--watch]`,
        summary: 'Show the mode, the agent, providers, cache and the containers DSO manages.',
        details: 'Exit status: 0 when everything it looks at answers; 8 when the Docker engine does not,\n11 when the agent does not (Cloud Mode). The report is printed either way.',
        flags: FLAGS,
      }),
    );
    return 0;
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, 'status');
  if (positionals.length) throw new DsoError('USAGE', 'status takes no arguments');
  const mode = flags.mode as string | undefined;
  if (!flags.watch) {
    const report = await collect(cli, mode);
    cli.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : render(report));
    return statusExitCode(report);
  }
  if (flags.json) throw new DsoError('USAGE', '--watch and --json do not go together', { hint: 'for scripts, run `status --json` periodically' });
  let running = true;
  const stop = () => {
    running = false;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  cli.stdout.write('\x1b[?25l\x1b[2J'); // hide the cursor, clear once
  try {
    while (running) {
      const frame = render(await collect(cli, mode)) + `\nRefreshing every 2 s; Ctrl-C to stop.  ${new Date().toLocaleTimeString()}`;
      // Cursor home, then each line followed by "clear to end of line", then clear below.
      cli.stdout.write(`\x1b[H${frame.split('\n').join('\x1b[K\n')}\x1b[K\x1b[J`);
      for (let i = 0; i < 20 && running; i++) await Bun.sleep(100);
    }
  } finally {
    cli.stdout.write('\x1b[?25h\n');
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}

/** A script can gate on `status`: what it could not reach decides the exit code, the engine first. */
export function statusExitCode(report: StatusReport): number {
  if (!report.docker.reachable) return exitCodeOf('DOCKER_UNREACHABLE');
  if (report.agent && !report.agent.reachable) return exitCodeOf('AGENT_UNREACHABLE');
  return 0;
}

export async function collect(cli: Cli, flagMode?: string): Promise<StatusReport> {
  const { detectMode } = await import('../../config/mode.ts');
  const decision = detectMode(cli.env, { localConfig: join(cli.cwd, 'dso.yaml'), vaultPath: vaultPath(cli.env), ...(flagMode === undefined ? {} : { flag: flagMode }) });
  const report: StatusReport = { mode: decision.mode, modeReason: decision.reason, version: VERSION, warnings: decision.warnings, ...(decision.guidance ? { guidance: decision.guidance } : {}), docker: { reachable: false, containers: [] } };

  const path = vaultPath(cli.env);
  const exists = existsSync(path);
  const st = exists ? statSync(path) : undefined;
  report.vault = { path, exists, ...(st ? { sizeBytes: st.size, modified: st.mtime.toISOString() } : {}) };

  if (decision.mode === 'cloud') {
    const { agentSocketPath, DEFAULT_AGENT_SOCKET } = await import('../../config/find.ts');
    const { agentStatus } = await import('../../agent/client.ts');
    const socket = await agentSocketPath(cli.env).catch(() => DEFAULT_AGENT_SOCKET);
    try {
      report.agent = { socket, reachable: true, status: await agentStatus(socket) };
    } catch (e) {
      report.agent = { socket, reachable: false, error: e instanceof Error ? e.message : String(e) };
    }
  }

  try {
    const { connectEngine } = await import('../../docker/engine.ts');
    const engine = await connectEngine(cli.env);
    const list = await engine.listContainers([`${LABEL_MANAGED}=true`]);
    report.docker = {
      reachable: true,
      containers: list
        .filter((c) => !c.name.startsWith('dso-holder-'))
        .map((c) => ({
          name: c.name,
          ...(c.labels['com.docker.compose.project'] ? { project: c.labels['com.docker.compose.project'] } : {}),
          ...(c.labels['com.docker.compose.service'] ? { service: c.labels['com.docker.compose.service'] } : {}),
          running: c.running,
          secrets: (c.labels['dso.secrets'] ?? '').split(',').filter(Boolean),
        }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  } catch (e) {
    report.docker = { reachable: false, error: e instanceof Error ? e.message : String(e), containers: [] };
  }
  return report;
}

function ago(iso?: string): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s ago` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m ago`;
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

export function render(r: StatusReport): string {
  const out: string[] = [`DSO ${r.version}, ${r.mode} mode (${r.modeReason})`];
  for (const w of r.warnings) out.push(`warning: ${w}`);
  if (r.guidance) out.push(`${r.guidance[0]!.toUpperCase()}${r.guidance.slice(1)}.`);
  if (r.mode === 'local' && r.vault) out.push(`Vault: ${r.vault.path}${r.vault.exists ? ` (${bytes(r.vault.sizeBytes ?? 0)}, changed ${ago(r.vault.modified)})` : ' (none yet: run `docker dso init`)'}`);
  if (r.agent) {
    if (!r.agent.reachable) {
      out.push(`Agent: NOT REACHABLE at ${r.agent.socket}`, `  ${r.agent.error ?? ''}`);
    } else {
      const s = r.agent.status ?? {};
      out.push(`Agent: running (pid ${s.pid}, up ${Math.round((s.uptimeSeconds ?? 0) / 60)} min, version ${s.version}) at ${r.agent.socket}`);
      out.push('', 'Providers:');
      const providers = (s.providers ?? []) as Array<Record<string, any>>;
      if (providers.length === 0) out.push('  (none configured)');
      for (const p of providers) {
        const health = p.healthy === false ? `UNHEALTHY (${p.lastError ?? 'unknown'}); cached values served up to agent.cache.max_stale` : p.state === 'ready' ? 'healthy' : p.state;
        out.push(`  ${p.name} (${p.kind}, ${p.isolation}): ${health}, last contact ${ago(p.lastContact)}${p.restarts ? `, ${p.restarts} restarts` : ''}`);
      }
      const c = s.cache ?? {};
      out.push('', 'Cache:', `  Entries: ${c.entries ?? 0}`, `  Size: ${bytes(c.bytes ?? 0)} of ${bytes(c.maxBytes ?? 0)}`, `  TTL: ${c.ttlSeconds ?? 0}s`, `  Hit rate: ${((c.hitRate ?? 0) * 100).toFixed(1)}% (${c.hits ?? 0} hits, ${c.misses ?? 0} misses)`, `  Served stale during outages: ${c.staleServed ?? 0}`);
      out.push('', `Queue: ${s.queue?.depth ?? 0} of ${s.queue?.capacity ?? 0}${s.queue?.drops ? ` (${s.queue.drops} dropped, reconciled since)` : ''}`);
      const pending = (s.pendingRotations ?? []) as Array<Record<string, any>>;
      out.push(`Pending rotations: ${pending.length === 0 ? 'none' : ''}`);
      for (const p of pending) out.push(`  ${p.container} (${p.strategy}, ${p.status === 'stuck' ? `STUCK: ${p.reason}` : `at ${p.step}`}, started ${ago(p.startedAt)}): ${(p.secrets ?? []).join(', ')}`);
      const recent = (s.recentRotations ?? []) as Array<Record<string, any>>;
      if (recent.length > 0) {
        out.push('Recent rotations:');
        for (const r of recent.slice(-5)) out.push(`  ${r.container}: ${r.strategy} ${r.status.replace('_', ' ')} ${ago(r.finishedAt)}${r.durationMs !== undefined ? ` in ${(r.durationMs / 1000).toFixed(1)} s` : ''}${r.downtimeMs !== undefined ? `, ${(r.downtimeMs / 1000).toFixed(1)} s without service` : ''}${r.reason && r.status !== 'done' ? ` (${r.reason})` : ''}`);
      }
    }
  }
  out.push('', 'Managed containers:');
  if (!r.docker.reachable) out.push(`  Docker engine not reachable: ${r.docker.error}`);
  else if (r.docker.containers.length === 0) out.push('  (none)');
  else {
    out.push(
      table(
        r.docker.containers.map((c) => [c.name, c.project ?? '', c.service ?? '', c.running ? 'running' : 'stopped', c.secrets.join(', ')]),
        ['CONTAINER', 'PROJECT', 'SERVICE', 'STATE', 'SECRETS'],
      )
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  return `${out.join('\n')}\n`;
}
