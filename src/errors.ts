// The one error family of DSO: every failure a user can meet carries a stable code, a message
// that names what failed (a secret name, a service, a file, never a value) and a hint saying what to do.

export type ErrorCode =
  | 'USAGE'
  | 'INVALID_SECRET_NAME'
  | 'INVALID_REFERENCE'
  | 'SECRET_NOT_FOUND'
  | 'VAULT_NOT_FOUND'
  | 'VAULT_EXISTS'
  | 'VAULT_WRONG_PASSPHRASE'
  | 'VAULT_CORRUPT'
  | 'VAULT_TAMPERED'
  | 'VAULT_TRUNCATED'
  | 'VAULT_VERSION_UNSUPPORTED'
  | 'VAULT_LOCKED'
  | 'VAULT_IO'
  | 'PASSPHRASE_REQUIRED'
  | 'PASSPHRASE_MISMATCH'
  | 'COMPOSE_NOT_FOUND'
  | 'COMPOSE_FAILED'
  | 'COMPOSE_FILE'
  | 'DOCKER_UNREACHABLE'
  | 'DOCKER_API'
  | 'NOT_RAM_BACKED'
  | 'REFUSED'
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'PROVIDER_NOT_CONFIGURED'
  | 'PROVIDER_FAILED'
  | 'AGENT_UNREACHABLE'
  | 'PERMISSION_DENIED'
  | 'SYSTEMD_FAILED'
  | 'ROTATION_FAILED'
  | 'INTERNAL';

/** Exit codes are grouped so scripts can tell "you asked wrongly" from "the world is broken". */
const EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: 2,
  INVALID_SECRET_NAME: 2,
  INVALID_REFERENCE: 2,
  SECRET_NOT_FOUND: 3,
  VAULT_NOT_FOUND: 3,
  VAULT_EXISTS: 3,
  VAULT_WRONG_PASSPHRASE: 4,
  VAULT_CORRUPT: 5,
  VAULT_TAMPERED: 5,
  VAULT_TRUNCATED: 5,
  VAULT_VERSION_UNSUPPORTED: 5,
  VAULT_LOCKED: 6,
  VAULT_IO: 6,
  PASSPHRASE_REQUIRED: 4,
  PASSPHRASE_MISMATCH: 4,
  COMPOSE_NOT_FOUND: 7,
  COMPOSE_FAILED: 7,
  COMPOSE_FILE: 2,
  DOCKER_UNREACHABLE: 8,
  DOCKER_API: 8,
  NOT_RAM_BACKED: 9,
  REFUSED: 9,
  CONFIG_NOT_FOUND: 3,
  CONFIG_INVALID: 2,
  PROVIDER_NOT_CONFIGURED: 3,
  PROVIDER_FAILED: 10,
  AGENT_UNREACHABLE: 11,
  PERMISSION_DENIED: 12,
  SYSTEMD_FAILED: 13,
  ROTATION_FAILED: 14,
  INTERNAL: 1,
};

export class DsoError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DsoError';
    this.code = code;
    this.hint = options.hint;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

/** The exit code of an error kind, for commands that report a failure without throwing. */
export function exitCodeOf(code: ErrorCode): number {
  return EXIT_CODES[code];
}

export function isDsoError(e: unknown, code?: ErrorCode): e is DsoError {
  return e instanceof DsoError && (code === undefined || e.code === code);
}

/** What a failed file operation's errno means, in the words of strerror(3), for messages. */
const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the file name is too long',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EBUSY: 'the device or resource is busy',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
};

/** A failed file operation's reason for a message: "no such file or directory", not "ENOENT". */
export function fsReason(error: unknown): string {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'string') return 'an unexpected error';
  return FS_REASONS[code] ?? code;
}
