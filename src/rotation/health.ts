// Is a new container healthy enough to take over? By its HEALTHCHECK (the image's or the compose
// file's) when it has one; else by the probe its labels give (a command run inside it, or an HTTP
// GET of its address); else by still running, without a restart, after one interval. Failures
// say why without quoting what the application printed (its output could hold a secret).
import type { Engine } from '../docker/engine.ts';
import type { HealthProbe } from './inventory.ts';

export interface HealthSettings {
  /** The longest wait for healthy (agent.health_check.timeout). */
  timeoutMs: number;
  /** Between two probes (agent.health_check.interval). */
  intervalMs: number;
  /** Failed probes tolerated before giving up early (agent.health_check.retries). */
  retries: number;
}

export type HealthResult = { ok: true; ms: number } | { ok: false; ms: number; reason: string };

export interface HealthDeps {
  engine: Engine;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export async function waitHealthy(deps: HealthDeps, id: string, probe: HealthProbe, s: HealthSettings): Promise<HealthResult> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? Bun.sleep;
  const started = now();
  const elapsed = () => now() - started;
  const fail = (reason: string): HealthResult => ({ ok: false, ms: elapsed(), reason });
  let failures = 0;
  let restarts: number | undefined;
  for (;;) {
    const d = await deps.engine.inspectDetails(id);
    if (!d) return fail('the container disappeared');
    const state = d.State;
    restarts ??= d.RestartCount ?? 0;
    if (!state.Running || state.Restarting || (d.RestartCount ?? 0) > restarts) {
      return fail(state.Running ? 'it restarted' : `it exited with code ${state.ExitCode}${state.OOMKilled ? ' (out of memory)' : ''}`);
    }
    switch (probe.kind) {
      case 'healthcheck': {
        const health = state.Health?.Status;
        if (health === 'healthy') return { ok: true, ms: elapsed() };
        if (health === 'unhealthy') {
          const last = state.Health?.Log?.at(-1);
          return fail(`its health check reports unhealthy${last ? ` (last check exited ${last.ExitCode})` : ''}`);
        }
        break;
      }
      case 'command': {
        const r = await deps.engine.exec(id, probe.command).catch(() => ({ exitCode: -1, output: '' }));
        if (r.exitCode === 0) return { ok: true, ms: elapsed() };
        if (++failures > s.retries) return fail(`the health command failed ${failures} times (last exit code ${r.exitCode})`);
        break;
      }
      case 'http': {
        const ip = Object.values(d.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
        let status = 0;
        if (ip) {
          try {
            const r = await fetch(`http://${ip}:${probe.port}${probe.path}`, { signal: AbortSignal.timeout(Math.max(500, s.intervalMs)), redirect: 'manual' });
            status = r.status;
            await r.body?.cancel().catch(() => {});
          } catch {
            status = 0;
          }
        }
        if (status >= 200 && status < 400) return { ok: true, ms: elapsed() };
        if (++failures > s.retries) return fail(`the HTTP probe of :${probe.port}${probe.path} failed ${failures} times (${status ? `HTTP ${status}` : 'no answer'})`);
        break;
      }
      case 'running':
        // Nothing to ask: running, and not restarted, for one interval is what there is.
        if (elapsed() >= s.intervalMs) return { ok: true, ms: elapsed() };
        break;
    }
    if (elapsed() >= s.timeoutMs) return fail(`not healthy within ${Math.round(s.timeoutMs / 1000)} s`);
    await sleep(Math.min(probe.kind === 'healthcheck' ? 250 : s.intervalMs, Math.max(1, s.timeoutMs - elapsed())));
  }
}
