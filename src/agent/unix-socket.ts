// The agent's unix sockets (its API, the admin socket, metrics on unix:/PATH), made the one safe
// way: a file left by a dead agent is replaced and a live agent's refused; the socket is bound
// owner-only whatever the umask, handed to its group, and only then opened to that group.
import { chmodSync, chownSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { DsoError } from '../errors.ts';
import { makeDirectory } from '../system/files.ts';

export interface SocketAccess {
  /** The dso.yaml key that sets this socket, named in errors (agent.socket, agent.metrics...). */
  key: string;
  mode: number;
  group?: string;
}

/** Removes a socket file left by an agent that died; refuses to start beside a live one. */
export async function prepareSocket(path: string, key: string): Promise<void> {
  makeDirectory(dirname(path), 0o755);
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) {
    throw new DsoError('REFUSED', `another agent is already serving ${path}`, { hint: `stop it first (\`sudo docker dso system disable\`), or give this one another ${key === 'agent.socket' ? 'agent.socket.path' : key}` });
  }
  unlinkSync(path);
}

/**
 * Serves `serve` on the unix socket `path` (prepared with prepareSocket). bind(2) gives the
 * socket the umask's mode, and a connection made before the chmod outlives it: under a
 * permissive umask (000, 002) anyone could connect in that window. So it is created owner-only,
 * handed to its group, and only then opened to the group.
 */
export function serveUnix(path: string, access: SocketAccess, serve: { fetch: (req: Request) => Response | Promise<Response> } & Record<string, unknown>): ReturnType<typeof Bun.serve> {
  const gid = access.group === undefined ? undefined : groupId(access.group, `${access.key}.group`);
  const umask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    // No idle timeout: Bun's default (10 s without a byte) cut a /v1/resolve that waited on a
    // provider (its timeout is 15 s by default, and may be set far higher) and a /v1/providers/check
    // logging in. Only local members of the socket's group can connect, and DSO's clients close
    // their connections after each request.
    server = Bun.serve({ idleTimeout: 0, ...serve, unix: path } as unknown as Parameters<typeof Bun.serve>[0]);
  } finally {
    process.umask(umask);
  }
  try {
    if (gid !== undefined) chownSync(path, -1, gid);
    chmodSync(path, access.mode);
  } catch (e) {
    server.stop(true);
    try {
      unlinkSync(path);
    } catch {}
    throw e;
  }
  return server;
}

function groupId(name: string, key: string): number {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) {
    throw new DsoError('CONFIG_INVALID', `${key}: there is no group "${name}" on this host`, { hint: `create it (groupadd ${name}) or change ${key}` });
  }
  return gid;
}
