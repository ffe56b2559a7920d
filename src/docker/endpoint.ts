// Which Docker engine to talk to, decided as the docker CLI decides it: DOCKER_HOST, else the
// current context (DOCKER_CONTEXT or ~/.docker/config.json), else the default local socket.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

export interface Endpoint {
  host: string;
  /** Where the host came from, for messages. */
  source: string;
  tlsVerify?: boolean;
  certPath?: string;
}

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export function resolveEndpoint(env: Env): Endpoint {
  if (env.DOCKER_HOST) {
    return {
      host: env.DOCKER_HOST,
      source: 'DOCKER_HOST',
      tlsVerify: Boolean(env.DOCKER_TLS_VERIFY),
      certPath: env.DOCKER_CERT_PATH,
    };
  }
  const configDir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const context = env.DOCKER_CONTEXT || currentContext(configDir);
  if (context && context !== 'default') {
    const id = createHash('sha256').update(context).digest('hex');
    try {
      const meta = JSON.parse(readFileSync(join(configDir, 'contexts', 'meta', id, 'meta.json'), 'utf8'));
      const host = meta?.Endpoints?.docker?.Host;
      if (typeof host === 'string' && host) {
        const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
        const skip = Boolean(meta?.Endpoints?.docker?.SkipTLSVerify);
        return { host, source: `docker context "${context}"`, tlsVerify: !skip && host.startsWith('tcp://'), certPath: tlsDir };
      }
    } catch {
      // An unreadable context falls back to the default socket, as the docker CLI reports it.
    }
  }
  return { host: DEFAULT_DOCKER_HOST, source: 'default' };
}

function currentContext(configDir: string): string | undefined {
  try {
    const cfg = JSON.parse(readFileSync(join(configDir, 'config.json'), 'utf8'));
    return typeof cfg?.currentContext === 'string' ? cfg.currentContext : undefined;
  } catch {
    return undefined;
  }
}

/** dockerode/docker-modem connection options for an endpoint. */
export function modemOptions(ep: Endpoint): Record<string, unknown> {
  const url = new URL(ep.host);
  switch (url.protocol) {
    case 'unix:':
      return { socketPath: url.pathname };
    case 'tcp:':
    case 'http:':
    case 'https:': {
      const tls = ep.tlsVerify || url.protocol === 'https:';
      const opts: Record<string, unknown> = {
        host: url.hostname,
        port: Number(url.port || (tls ? 2376 : 2375)),
        protocol: tls ? 'https' : 'http',
      };
      if (tls && ep.certPath) {
        opts.ca = readFileSync(join(ep.certPath, 'ca.pem'));
        opts.cert = readFileSync(join(ep.certPath, 'cert.pem'));
        opts.key = readFileSync(join(ep.certPath, 'key.pem'));
      }
      return opts;
    }
    case 'ssh:':
      return { protocol: 'ssh', host: url.hostname, port: Number(url.port || 22), username: url.username || undefined };
    default:
      return { socketPath: url.pathname };
  }
}
