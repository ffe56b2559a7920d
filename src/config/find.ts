// Which dso.yaml applies: $DSO_CONFIG when set, else /etc/dso/dso.yaml (the host's, as the seed
// documents), else ./dso.yaml in the working directory.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SYSTEM_CONFIG_PATH = '/etc/dso/dso.yaml';

export function configCandidates(env: Readonly<Record<string, string | undefined>>, cwd: string): string[] {
  if (env.DSO_CONFIG) return [resolve(cwd, env.DSO_CONFIG)];
  return [SYSTEM_CONFIG_PATH, join(cwd, 'dso.yaml')];
}

/** The first candidate that exists, or undefined. $DSO_CONFIG is returned even when missing, so its absence is an error. */
export function findConfigPath(env: Readonly<Record<string, string | undefined>>, cwd: string): string | undefined {
  const candidates = configCandidates(env, cwd);
  if (env.DSO_CONFIG) return candidates[0];
  return candidates.find((p) => existsSync(p));
}

/** In the agent's own directory under /run: the systemd unit's RuntimeDirectory (docs/agent.md). */
export const DEFAULT_AGENT_SOCKET = '/run/dso/dso.sock';

/** The agent's socket: $DSO_AGENT_SOCKET, else agent.socket.path of /etc/dso/dso.yaml, else the default. */
export async function agentSocketPath(env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (env.DSO_AGENT_SOCKET) return env.DSO_AGENT_SOCKET;
  const path = env.DSO_CONFIG || SYSTEM_CONFIG_PATH;
  if (!existsSync(path)) return DEFAULT_AGENT_SOCKET;
  const { loadConfig } = await import('./load.ts');
  return (await loadConfig(path)).agent.socket.path;
}
