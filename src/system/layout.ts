// Where `system setup` puts things on a host, in one place: the production paths, which tests
// replace with paths under a temporary directory (no environment variable can move them).
import { SYSTEM_CONFIG_PATH } from '../config/find.ts';

export const UNIT_NAME = 'dso-agent.service';

export interface SystemLayout {
  /** The unit file setup writes. */
  unitFile: string;
  /** Where the binary is installed as `dso`, with `dso-agent` linked beside it. */
  binDir: string;
  /** The agent's configuration: /etc/dso/dso.yaml. */
  configFile: string;
  /** Provider credentials for the service (mode 0600), read by systemd, never by the CLI's users. */
  envFile: string;
  /** The root of RuntimeDirectory= paths. */
  runDir: string;
  /** Exists when systemd is PID 1 (sd_booted(3)). */
  systemdMarker: string;
  /** The Docker socket, whose group the non-root agent joins. */
  dockerSocket: string;
  passwdFile: string;
  groupFile: string;
}

export const SYSTEM_LAYOUT: SystemLayout = {
  unitFile: `/etc/systemd/system/${UNIT_NAME}`,
  binDir: '/usr/local/bin',
  configFile: SYSTEM_CONFIG_PATH,
  envFile: '/etc/dso/agent.env',
  runDir: '/run',
  systemdMarker: '/run/systemd/system',
  dockerSocket: '/var/run/docker.sock',
  passwdFile: '/etc/passwd',
  groupFile: '/etc/group',
};

/** The dedicated system user of `--enable-nonroot`. */
export const AGENT_USER = 'dso';
