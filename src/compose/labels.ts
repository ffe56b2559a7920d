// The labels DSO puts on containers and volumes, in one place: later work (the agent, rotation)
// finds what DSO manages through them. They carry names and paths, never values or hashes of values.

export const LABEL_MANAGED = 'dso.managed';
/** Comma-separated secret names a service uses. */
export const LABEL_SECRETS = 'dso.secrets';
/** Comma-separated `VARIABLE=name` pairs delivered by dso:// (environment). */
export const LABEL_ENV_SECRETS = 'dso.env-secrets';
/** Comma-separated `/in/container/path=name` pairs delivered as files. */
export const LABEL_FILE_SECRETS = 'dso.file-secrets';
/** The Compose project a DSO volume or holder belongs to. */
export const LABEL_PROJECT = 'dso.project';
/** What a DSO-made object is: `holder` (keeps secret volumes mounted) or `secret-volume`. */
export const LABEL_ROLE = 'dso.role';
/** The service a secret volume serves, and the directory it is mounted on. */
export const LABEL_SERVICE = 'dso.service';
export const LABEL_MOUNT_DIR = 'dso.mount-dir';
export const LABEL_HOLDER = 'dso.holder';
