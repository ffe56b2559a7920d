// The contract between DSO and a secret provider (Vault, AWS, Azure, Huawei, the local vault, a
// custom plugin): what a provider module exports, what it is given, what it returns, and the
// small set of errors it may raise. A provider runs inside a Worker or a child process (see
// src/providers/host.ts); nothing here may import an SDK.
import type { GenericSchema } from 'valibot';

/** What a provider can do beyond `get`. */
export interface ProviderCapabilities {
  /** `list(prefix)` is implemented. */
  list: boolean;
  /** The backend can push change notifications (used by rotation, later). */
  watch: boolean;
  /** `get` returns the backend's own version id for a value (else DSO fingerprints the bytes). */
  versions: boolean;
}

export interface GetOptions {
  /** A specific version (Vault KV version number, AWS version id or stage, Azure version id). */
  version?: string;
  /**
   * The largest value DSO accepts. A provider should refuse a bigger one as early as it can
   * (from a Content-Length or a size field) with `ProviderError('too_large')`; the host checks
   * again whatever comes back.
   */
  maxBytes: number;
  /** Aborted when the call times out or DSO shuts down: pass it to every request. */
  signal: AbortSignal;
}

export interface FetchedSecret {
  /** The secret's bytes, in a buffer the provider allocated for this call; DSO owns and zeroes it. */
  value: Uint8Array;
  /** The backend's version id for these bytes, when it has one. */
  version?: string;
}

export interface Provider {
  readonly capabilities: ProviderCapabilities;
  /** The secret at `path` (the part of `PROVIDER:PATH#KEY` between the colon and any `#`). */
  get(path: string, options: GetOptions): Promise<FetchedSecret>;
  /** Secret names under `prefix`, when `capabilities.list`. Never values. */
  list?(prefix: string, options: { signal: AbortSignal }): Promise<string[]>;
  /** Releases connections and timers (token renewal) and zeroes credentials held. */
  close?(): Promise<void>;
}

/** What DSO hands a provider when it starts it. */
export interface ProviderContext {
  /** The provider's name in dso.yaml (`vault`, `prod-vault`...), for messages. */
  name: string;
  /**
   * The only environment the provider gets: the variables its configuration names (for example
   * `token_env: VAULT_TOKEN`) and those listed under its `env:` key. Read credentials from here,
   * never from `process.env`.
   */
  env: Readonly<Record<string, string>>;
  /** Where the provider may write diagnostics (one line each; DSO sanitises and labels them). */
  log(level: 'debug' | 'info' | 'warn', message: string): void;
  /** The uid DSO itself runs as (the provider's process may run as another): files it owns are DSO's. */
  dsoUid?: number;
  /**
   * The account the provider runs as when DSO runs as root (dso.yaml's `user:`): what a program
   * the provider starts (a plugin) must run as. Undefined: as DSO.
   */
  user?: { uid: number; gid: number };
}

export type Isolation = 'worker' | 'process';

/**
 * The light half of a provider module (`providers/<kind>/config.ts`): its configuration schema and
 * the environment variables that configuration makes it read. Loaded on the main thread to
 * validate dso.yaml, so it must not import an SDK.
 */
export interface ProviderDefinition<C = unknown> {
  kind: string;
  /**
   * The provider-specific part of its dso.yaml entry. valibot's default messages quote the value
   * they received: give every check a message of its own that names the expected form instead.
   */
  schema: GenericSchema<unknown, C>;
  /** Names of the environment variables the validated configuration needs passed through. */
  environment(config: C): string[];
  /** Environment variable names to pass when the operator's environment has them (AWS_*...). */
  optionalEnvironment?(config: C): string[];
  /**
   * Variables DSO sets itself for the provider, from its configuration (for example
   * NODE_EXTRA_CA_CERTS from a CA file, which Bun reads only when a process starts: such a
   * provider should default to `isolation: process`, where the child starts with it).
   */
  fixedEnvironment?(config: C): Record<string, string>;
  /** Where the provider runs unless dso.yaml says otherwise. */
  defaultIsolation: Isolation;
  /**
   * The provider reads files that belong to DSO's own user (the local vault, which DSO rewrites
   * as that user at every change): as root, its process stays root unless dso.yaml names a
   * `user:`, instead of dropping to the default provider user.
   */
  runsAsDso?: boolean;
}

/** The heavy half (`providers/<kind>/client.ts`): builds a Provider inside its Worker or process. */
export type CreateProvider<C = unknown> = (config: C, context: ProviderContext) => Promise<Provider>;

/**
 * What went wrong, as a kind DSO acts on (retry, report, fall back to cache later):
 * - not_found: no such secret (or version) at the backend
 * - key_not_found: the secret exists but has no such #KEY field (raised by DSO, not providers)
 * - denied: the credentials are valid but may not read this secret
 * - auth: the credentials are missing, invalid or expired, or login failed
 * - unavailable: the backend could not be reached or answered 5xx
 * - timeout: the call took longer than the provider's timeout
 * - too_large: the value exceeds the size limit
 * - invalid_response: the backend answered something that is not what its API documents
 * - config: the provider's configuration cannot work (bad URL, unreadable credential file...)
 * - crashed: the provider's Worker or process died (raised by the host)
 * - internal: a bug
 */
export type ProviderErrorKind =
  | 'not_found'
  | 'key_not_found'
  | 'denied'
  | 'auth'
  | 'unavailable'
  | 'timeout'
  | 'too_large'
  | 'invalid_response'
  | 'config'
  | 'crashed'
  | 'internal';

export const PROVIDER_ERROR_KINDS: readonly ProviderErrorKind[] = [
  'not_found',
  'key_not_found',
  'denied',
  'auth',
  'unavailable',
  'timeout',
  'too_large',
  'invalid_response',
  'config',
  'crashed',
  'internal',
];

/**
 * The one error a provider throws. Its message must be safe to show an operator: no secret value,
 * no token, no signed URL, no request body. Say what failed and, where it helps, the backend's
 * status code and error code (for example "permission denied (HTTP 403)").
 */
export class ProviderError extends Error {
  readonly kind: ProviderErrorKind;

  constructor(kind: ProviderErrorKind, message: string) {
    super(message);
    this.name = 'ProviderError';
    this.kind = kind;
  }

  /** Whether trying again later may help. */
  get transient(): boolean {
    return this.kind === 'unavailable' || this.kind === 'timeout' || this.kind === 'crashed';
  }

  /**
   * Whether the backend gave no usable answer: unreachable, slow, crashed, or an answer its API
   * does not document (garbage, cut short, endless). The backend counts as down and the last good
   * value may stand in; an answer that means something (not found, denied) is believed instead.
   */
  get backendFault(): boolean {
    return this.transient || this.kind === 'invalid_response' || this.kind === 'too_large';
  }
}
