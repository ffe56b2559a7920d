// The labels DSO puts on containers and volumes, in one place: the agent and rotation find what
// DSO manages through them. They carry names, paths and keyed fingerprints, never values or plain
// hashes of values (a plain hash of a weak secret can be brute-forced from `docker inspect`).

export const LABEL_MANAGED = 'dso.managed';
/** Comma-separated secret ids a service uses. */
export const LABEL_SECRETS = 'dso.secrets';
/** Comma-separated `VARIABLE=id` pairs delivered by dso:// (environment). */
export const LABEL_ENV_SECRETS = 'dso.env-secrets';
/**
 * JSON list of the files delivered by dsofile:// and x-dso: `[{"path","id","uid","gid","mode"}]`,
 * everything needed to put them back after a reboot emptied RAM.
 */
export const LABEL_FILES = 'dso.files';
/**
 * JSON map of secret id to the fingerprint of the value the container was given (an HMAC keyed
 * with the agent's own key, see src/rotation/fingerprint.ts): how the agent tells which
 * containers hold an outdated value. Set only when the agent resolved the values.
 */
export const LABEL_VERSIONS = 'dso.versions';
/** The local vault that supplied a container's local names (src/vault/vault-id.ts): rotation stays within it. */
export const LABEL_VAULT = 'dso.vault';
/**
 * Where a container's provider references were resolved: `agent` (Cloud Mode), or the path of the
 * dso.yaml whose providers the CLI ran. Rotation only touches containers of its own source.
 */
export const LABEL_CONFIG = 'dso.config';
/** The Compose project a DSO volume or holder belongs to. */
export const LABEL_PROJECT = 'dso.project';
/** What a DSO-made object is: `holder` (keeps secret volumes mounted) or `secret-volume`. */
export const LABEL_ROLE = 'dso.role';
/** The service a secret volume serves, and the directory it is mounted on. */
export const LABEL_SERVICE = 'dso.service';
export const LABEL_MOUNT_DIR = 'dso.mount-dir';
export const LABEL_HOLDER = 'dso.holder';
/** On a secret volume: `base` (the one the compose model names) or the rotation that made it. */
export const LABEL_GENERATION = 'dso.generation';
/** On a container or volume a rotation created: that rotation's id. */
export const LABEL_ROTATION = 'dso.rotation';

// Set by users on their services (compose `labels:`), read by rotation.
/** `false` opts a container out of automatic rotation (the seed's opt-in marker `true` is accepted). */
export const LABEL_RELOADER = 'dso.reloader';
/** `rolling`, `restart`, `signal` or `none`: how to rotate this container. */
export const LABEL_STRATEGY = 'dso.strategy';
/** The signal the `signal` strategy sends (default SIGHUP). */
export const LABEL_SIGNAL = 'dso.signal';
/** `allow`: let `rolling` run two instances at once even where DSO would not (shared writable storage). */
export const LABEL_OVERLAP = 'dso.overlap';
/** A health probe for containers without a HEALTHCHECK: a command run inside, or `:PORT/PATH` over HTTP. */
export const LABEL_HEALTH_CMD = 'dso.healthcheck.cmd';
export const LABEL_HEALTH_HTTP = 'dso.healthcheck.http';

/** The Compose labels rotation reads (it copies every label, these included, to a new container). */
export const COMPOSE_PROJECT = 'com.docker.compose.project';
export const COMPOSE_SERVICE = 'com.docker.compose.service';
export const COMPOSE_NUMBER = 'com.docker.compose.container-number';
export const COMPOSE_DEPENDS_ON = 'com.docker.compose.depends_on';
export const COMPOSE_ONEOFF = 'com.docker.compose.oneoff';
