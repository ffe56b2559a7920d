// Waiting for the agent started by systemd to answer /v1/health on its socket, with a progress
// line, and giving up early when systemd says the unit failed.
import { existsSync } from 'node:fs';
import type { Output } from '../cli/context.ts';
import { unitState, type HostCommands } from './systemctl.ts';

export interface WaitOptions {
  socket: string;
  timeoutMs: number;
  cmds: HostCommands;
  progress: Output;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export type WaitOutcome = { ok: true; ms: number } | { ok: false; reason: string };

export async function waitForAgent(o: WaitOptions): Promise<WaitOutcome> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? Bun.sleep;
  const started = now();
  const tty = o.progress.isTTY;
  const line = (s: string) => o.progress.write(tty ? `\r\x1b[K${s}` : `${s}\n`);
  line(`Waiting for the agent to answer on ${o.socket} ...`);
  let lastShown = 0;
  for (;;) {
    if (await agentHealthy(o.socket)) {
      const ms = now() - started;
      if (tty) line(`The agent answers on ${o.socket} (${(ms / 1000).toFixed(1)} s).\n`);
      return { ok: true, ms };
    }
    const state = await unitState(o.cmds).catch(() => undefined);
    // auto-restart: the agent exited and systemd will try again; its log says why, now.
    if (state && (state.activeState === 'failed' || state.subState === 'auto-restart' || (state.activeState === 'inactive' && state.result !== 'success'))) {
      if (tty) o.progress.write('\n');
      const what = state.activeState === 'failed' ? 'failed' : state.subState === 'auto-restart' ? 'exited and systemd is restarting it' : 'stopped';
      return { ok: false, reason: `the agent ${what} (${state.result || state.subState})` };
    }
    const elapsed = now() - started;
    if (elapsed >= o.timeoutMs) {
      if (tty) o.progress.write('\n');
      return { ok: false, reason: `no answer within ${Math.round(o.timeoutMs / 1000)} s (the service is ${state?.activeState ?? 'in an unknown state'})` };
    }
    if (tty && elapsed - lastShown >= 1000) {
      lastShown = elapsed;
      line(`Waiting for the agent to answer on ${o.socket} ... ${Math.floor(elapsed / 1000)} s`);
    }
    await sleep(250);
  }
}

/** Whether an agent answers /v1/health on `socket` now. */
export async function agentHealthy(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  try {
    const r = await fetch('http://dso-agent/v1/health', { unix: socket, signal: AbortSignal.timeout(2000) } as RequestInit);
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}
