// Resolving provider references for one run: one host per provider used (started lazily, in
// parallel), each distinct secret fetched once however many references share it, #KEY fields
// selected here, and every failure reported together, naming the reference and where it is used.
import type { DsoConfig } from '../config/load.ts';
import type { SecretId } from '../compose/references.ts';
import { DsoError } from '../errors.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';
import { ProviderError, type ProviderErrorKind } from './contract.ts';
import { ProviderHost, type HostOptions } from './host.ts';
import { selectKey } from './select-key.ts';

export interface ProviderSetOptions {
  env: Readonly<Record<string, string | undefined>>;
  log?: HostOptions['log'];
  /** For tests: overrides passed to every host. */
  hostOverrides?: Partial<HostOptions>;
}

/** The hosts of the providers a config declares, created on first use. */
export class ProviderSet {
  readonly #config: DsoConfig;
  readonly #options: ProviderSetOptions;
  readonly #hosts = new Map<string, ProviderHost>();
  #closed = false;

  constructor(config: DsoConfig, options: ProviderSetOptions) {
    this.#config = config;
    this.#options = options;
  }

  get config(): DsoConfig {
    return this.#config;
  }

  has(name: string): boolean {
    return this.#config.providers.has(name);
  }

  host(name: string): ProviderHost {
    // A late caller (a check still running when the agent stops) must not start a provider
    // nobody will close: its Worker or process would keep the agent from ever exiting.
    if (this.#closed) throw new ProviderError('unavailable', 'DSO is shutting its providers down');
    let host = this.#hosts.get(name);
    if (host) return host;
    const settings = this.#config.providers.get(name);
    if (!settings) throw new Error(`internal: provider ${name} is not configured`);
    host = new ProviderHost({ settings, env: this.#options.env, maxBytes: this.#config.maxSecretBytes, ...(this.#options.log ? { log: this.#options.log } : {}), ...this.#options.hostOverrides });
    this.#hosts.set(name, host);
    return host;
  }

  hosts(): ProviderHost[] {
    return [...this.#hosts.values()];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#hosts.values()].map((h) => h.close()));
    this.#hosts.clear();
  }
}

export interface Wanted {
  id: SecretId;
  /** Where the reference is used, for messages: `service "app", variable DB_URL`. */
  uses: string[];
}

export interface ResolveOptions {
  /** Calls in flight per provider (16). */
  concurrency?: number;
  /** Said after the list of failures' headline, like "nothing was started". */
  consequence?: string;
}

/**
 * Fetches every wanted provider secret. Returns values by canonical id (the caller wipes them);
 * throws PROVIDER_NOT_CONFIGURED or PROVIDER_FAILED listing every reference that failed, and
 * then nothing fetched is kept.
 */
export async function resolveProviderSecrets(set: ProviderSet, wanted: Wanted[], options: ResolveOptions = {}): Promise<Map<string, SecretBytes>> {
  const unknown = wanted.filter((w) => !set.has(w.id.provider!));
  if (unknown.length > 0) {
    const names = [...new Set(unknown.map((w) => w.id.provider!))];
    throw new DsoError('PROVIDER_NOT_CONFIGURED', `${names.length === 1 ? `provider "${names[0]}" is` : `providers ${names.map((n) => `"${n}"`).join(', ')} are`} not configured in ${set.config.path}; used by:\n${unknown.map((w) => `    ${w.id.id} (${w.uses.join('; ')})`).join('\n')}`, {
      hint: `add ${names.length === 1 ? 'it' : 'them'} under providers: (see docs/providers.md), or fix the reference`,
    });
  }

  // One fetch per provider, path and version; #KEY selections share it.
  const fetches = new Map<string, { provider: string; path: string; version?: string; wanted: Wanted[] }>();
  for (const w of wanted) {
    const k = JSON.stringify([w.id.provider, w.id.path, w.id.version ?? null]);
    const f = fetches.get(k) ?? { provider: w.id.provider!, path: w.id.path, ...(w.id.version === undefined ? {} : { version: w.id.version }), wanted: [] };
    f.wanted.push(w);
    fetches.set(k, f);
  }

  const values = new Map<string, SecretBytes>();
  const failures: Array<{ wanted: Wanted; provider: string; error: ProviderError }> = [];
  const byProvider = new Map<string, Array<typeof fetches extends Map<string, infer F> ? F : never>>();
  for (const f of fetches.values()) byProvider.set(f.provider, [...(byProvider.get(f.provider) ?? []), f]);

  await Promise.all(
    [...byProvider].map(async ([provider, list]) => {
      const host = set.host(provider);
      const queue = [...list];
      const worker = async () => {
        for (let f = queue.shift(); f; f = queue.shift()) {
          let whole: SecretBytes | undefined;
          try {
            whole = (await host.get(f.path, f.version === undefined ? {} : { version: f.version })).value;
            for (const w of f.wanted) {
              try {
                values.set(w.id.id, w.id.key === undefined ? SecretBytes.copyOf(whole.expose()) : new SecretBytes(selectKey(whole.expose(), w.id.key)));
              } catch (e) {
                failures.push({ wanted: w, provider, error: asProviderError(e) });
              }
            }
          } catch (e) {
            for (const w of f.wanted) failures.push({ wanted: w, provider, error: asProviderError(e) });
          } finally {
            whole?.wipe();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 16, list.length) }, worker));
    }),
  );

  if (failures.length > 0) {
    wipeAll(...values.values());
    throw failureError(failures.map((f) => ({ wanted: f.wanted, provider: f.provider, kind: f.error.kind, message: f.error.message })), options.consequence);
  }
  return values;
}

function asProviderError(e: unknown): ProviderError {
  if (e instanceof ProviderError) return e;
  if (e instanceof DsoError) return new ProviderError('internal', e.message);
  return new ProviderError('internal', e instanceof Error ? e.message : String(e));
}

const HINTS: Partial<Record<ProviderErrorKind, string>> = {
  not_found: 'check the path (and version) at the provider, or create the secret there',
  key_not_found: 'check the #KEY against the secret\'s fields',
  denied: 'grant DSO\'s identity read access to the secret (a policy at the provider)',
  auth: 'check the provider\'s credentials in dso.yaml and the environment variables it names',
  unavailable: 'check that the provider\'s backend is reachable from this host, then retry',
  timeout: 'the backend is slow or unreachable: retry, or raise the provider\'s timeout: in dso.yaml',
  crashed: 'run again; if it keeps failing, run with DSO_TRACE=1 and report the provider\'s log lines',
  too_large: 'secrets are limited to agent.cache.max_secret_size in dso.yaml (10Mi by default)',
  config: 'fix the provider\'s settings in dso.yaml',
  invalid_response: 'the backend answered something unexpected: check its address and version',
};

export interface Failure {
  wanted: Wanted;
  provider: string;
  kind: ProviderErrorKind | string;
  message: string;
}

/** One error listing every failed reference, with where it is used and a hint per kind of failure. */
export function failureError(failures: Failure[], consequence?: string): DsoError {
  const lines = [...failures]
    .sort((a, b) => a.wanted.id.id.localeCompare(b.wanted.id.id))
    .map((f) => `    ${f.wanted.id.id} (${f.wanted.uses.join('; ')}): ${f.kind.replaceAll('_', ' ')}: ${f.message}`);
  const kinds = [...new Set(failures.map((f) => f.kind))];
  const hint = kinds.map((k) => HINTS[k as ProviderErrorKind]).filter(Boolean).join('; ') || 'see the messages above';
  return new DsoError('PROVIDER_FAILED', `${failures.length === 1 ? 'a secret' : `${failures.length} secrets`} could not be read from ${[...new Set(failures.map((f) => f.provider))].join(', ')}${consequence ? `; ${consequence}` : ''}:\n${lines.join('\n')}`, { hint });
}
