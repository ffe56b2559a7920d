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

/**
 * Where `rotate` asks the agent: the admin socket when there is one (agent.socket.admin), else
 * the API socket. $DSO_AGENT_ADMIN_SOCKET, else, when $DSO_AGENT_SOCKET names another agent, that
 * socket (an admin path from dso.yaml would be another agent's), else dso.yaml's.
 */
export async function agentAdminSocketPath(env: Readonly<Record<string, string | undefined>>): Promise<{ path: string; admin: boolean }> {
  if (env.DSO_AGENT_ADMIN_SOCKET) return { path: env.DSO_AGENT_ADMIN_SOCKET, admin: true };
  if (env.DSO_AGENT_SOCKET) return { path: env.DSO_AGENT_SOCKET, admin: false };
  const path = env.DSO_CONFIG || SYSTEM_CONFIG_PATH;
  if (!existsSync(path)) return { path: DEFAULT_AGENT_SOCKET, admin: false };
  const { loadConfig } = await import('./load.ts');
  const socket = (await loadConfig(path)).agent.socket;
  return socket.admin ? { path: socket.admin.path, admin: true } : { path: socket.path, admin: false };
}
