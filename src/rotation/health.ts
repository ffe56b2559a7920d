// Is a new container healthy enough to take over? By its HEALTHCHECK (the image's or the compose
// file's) when it has one; else by the probe its labels give (a command run inside it, or an HTTP
// GET of its address); else by still running, without a restart, after one interval. All within
// the health timeout, whatever a probe does. Failures say why without quoting what the
// application printed (its output could hold a secret).
import { abortableSleep, deadline } from '../abortable.ts';
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
  /** The deadline of the whole rotation: when it aborts, the wait ends with its reason (thrown). */
  signal?: AbortSignal;
  now?: () => number;
}

/** The health timeout ran out (internal: it becomes a failed HealthResult). */
class HealthTimeout extends Error {}

/**
 * Waits until the container `id` is healthy by `probe`, and never longer than `s.timeoutMs`:
 * every engine call, probe and pause of the wait ends at that deadline, so a probe that never
 * returns (a health command that hangs) fails the check instead of holding the rotation.
 */
export async function waitHealthy(deps: HealthDeps, id: string, probe: HealthProbe, s: HealthSettings): Promise<HealthResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const elapsed = () => now() - started;
  const fail = (reason: string): HealthResult => ({ ok: false, ms: elapsed(), reason });
  const limit = deadline(s.timeoutMs, () => new HealthTimeout(), deps.signal);
  const engine = deps.engine.bounded({ callMs: s.timeoutMs, signal: limit.signal });
  let probing = false;
  try {
    return await poll();
  } catch (e) {
    if (!(e instanceof HealthTimeout)) throw e;
    const what = probe.kind === 'command' ? 'the health command' : probe.kind === 'http' ? 'the HTTP probe' : 'the engine';
    return fail(`not healthy within ${Math.round(s.timeoutMs / 1000)} s${probing ? ` (${what} had not answered)` : ''}`);
  } finally {
    limit.clear();
  }

  async function poll(): Promise<HealthResult> {
    let failures = 0;
    let restarts: number | undefined;
    for (;;) {
      const d = await engine.inspectDetails(id);
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
          // Its output is never read (it could hold a secret): none is kept.
          probing = true;
          const r = await engine.exec(id, probe.command, { maxOutputBytes: 0 }).catch((e: unknown) => {
            if (limit.signal.aborted) throw limit.signal.reason;
            void e;
            return { exitCode: -1, output: '' };
          });
          probing = false;
          if (r.exitCode === 0) return { ok: true, ms: elapsed() };
          if (++failures > s.retries) return fail(`the health command failed ${failures} times (last exit code ${r.exitCode})`);
          break;
        }
        case 'http': {
          const ip = Object.values(d.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
          let status = 0;
          if (ip) {
            probing = true;
            const attempt = deadline(Math.max(500, s.intervalMs), () => new Error('no answer'), limit.signal);
            try {
              const r = await fetch(`http://${ip}:${probe.port}${probe.path}`, { signal: attempt.signal, redirect: 'manual' });
              status = r.status;
              await r.body?.cancel().catch(() => {});
            } catch {
              status = 0;
            } finally {
              attempt.clear();
            }
            if (limit.signal.aborted) throw limit.signal.reason;
            probing = false;
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
      await abortableSleep(Math.min(probe.kind === 'healthcheck' ? 250 : s.intervalMs, Math.max(1, s.timeoutMs - elapsed())), limit.signal);
      if (limit.signal.aborted) throw limit.signal.reason;
    }
  }
}
