// The supervisor of one configured provider: starts it in its Worker or child process with only
// its own environment, sends it calls with deadlines, and restarts it with exponential backoff
// when it crashes, hangs or breaks the protocol. Whatever the provider does, a caller gets a value
// or a ProviderError, and the rest of DSO keeps running.
import type { ProviderSettings } from '../config/providers.ts';
import { SecretBytes } from '../secrets/secret-bytes.ts';
import { ProviderError, type ProviderCapabilities } from './contract.ts';
import { parseFromProvider, type FromProvider, type ToProvider } from './messages.ts';
import { sanitize } from './sanitize.ts';
import { startProcess, startWorker, type Transport, type TransportOptions } from './transports.ts';

export interface HostOptions {
  settings: ProviderSettings;
  /** DSO's own environment, from which the provider's declared variables are taken. */
  env: Readonly<Record<string, string | undefined>>;
  /** The largest value accepted. */
  maxBytes: number;
  log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
  /** First and largest wait before restarting a provider that failed (200 ms, 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** The limit for a provider to become ready, login included (30 s). */
  startTimeoutMs?: number;
  /** Extra time after a call's own deadline before DSO declares the provider hung (2 s). */
  hangGraceMs?: number;
  /** For tests: another Worker script or process command speaking the same protocol. */
  workerUrl?: string;
  processCommand?: string[];
  now?: () => number;
}

export interface HostStatus {
  name: string;
  kind: string;
  isolation: 'worker' | 'process';
  state: 'stopped' | 'starting' | 'ready' | 'backoff' | 'closed';
  restarts: number;
  consecutiveFailures: number;
  lastError?: string;
  /** The child's pid, for process isolation. */
  pid?: number;
}

export interface HostedSecret {
  value: SecretBytes;
  version?: string;
}

interface Pending {
  resolve(m: FromProvider): void;
  reject(e: ProviderError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class ProviderHost {
  readonly name: string;
  readonly #o: HostOptions;
  readonly #now: () => number;
  readonly #known: string[];
  #transport?: Transport;
  #ready?: Promise<void>;
  /** Ends a start under way (its timer included, which would otherwise keep the process alive). */
  #abandonStart?: (error: ProviderError) => void;
  #state: HostStatus['state'] = 'stopped';
  #capabilities?: ProviderCapabilities;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #restarts = 0;
  #failures = 0;
  #retryAt = 0;
  #lastError?: string;

  constructor(options: HostOptions) {
    this.#o = options;
    this.name = options.settings.name;
    this.#now = options.now ?? Date.now;
    this.#known = Object.values(this.#environment(false)).filter((x) => x.length >= 8);
  }

  get capabilities(): ProviderCapabilities | undefined {
    return this.#capabilities;
  }

  status(): HostStatus {
    return {
      name: this.name,
      kind: this.#o.settings.kind,
      isolation: this.#o.settings.isolation,
      state: this.#state,
      restarts: this.#restarts,
      consecutiveFailures: this.#failures,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      ...(this.#transport?.pid === undefined ? {} : { pid: this.#transport.pid }),
    };
  }

  /** The secret at `path`; the caller owns (and wipes) the bytes. Throws ProviderError. */
  async get(path: string, options: { version?: string } = {}): Promise<HostedSecret> {
    const timeoutMs = this.#o.settings.timeoutMs;
    const answer = await this.#call((id) => ({ type: 'get', id, path, maxBytes: this.#o.maxBytes, timeoutMs, ...(options.version === undefined ? {} : { version: options.version }) }), timeoutMs);
    if (answer.type !== 'value') throw new ProviderError('invalid_response', 'the provider answered a get with something else');
    if (answer.value.length > this.#o.maxBytes) {
      answer.value.fill(0);
      throw new ProviderError('too_large', `the value is ${answer.value.length} bytes, over the ${this.#o.maxBytes}-byte limit`);
    }
    return { value: new SecretBytes(answer.value), ...(answer.version === undefined ? {} : { version: answer.version }) };
  }

  async list(prefix: string): Promise<string[]> {
    const timeoutMs = this.#o.settings.timeoutMs;
    const answer = await this.#call((id) => ({ type: 'list', id, prefix, timeoutMs }), timeoutMs);
    if (answer.type !== 'names') throw new ProviderError('invalid_response', 'the provider answered a list with something else');
    return answer.names;
  }

  /** Starts the provider now rather than on first use (so a bad login shows early). */
  async start(): Promise<void> {
    await this.#ensureReady(this.#o.startTimeoutMs ?? 30_000);
  }

  /** Asks the provider to close (it zeroes its credentials), then ends it. */
  async close(): Promise<void> {
    this.#state = 'closed';
    const t = this.#transport;
    this.#transport = undefined;
    this.#failAll(new ProviderError('unavailable', 'DSO is shutting the provider down'));
    this.#abandonStart?.(new ProviderError('unavailable', 'DSO shut the provider down while it was starting'));
    if (!t) return;
    const ended = new Promise<void>((resolve) => t.onExit(() => resolve()));
    t.send({ type: 'close' });
    const timer = setTimeout(() => t.terminate(), 2000);
    await ended;
    clearTimeout(timer);
  }

  async #call(build: (id: number) => ToProvider, timeoutMs: number): Promise<FromProvider> {
    if (this.#state === 'closed') throw new ProviderError('unavailable', 'the provider was shut down');
    await this.#readyWithin(timeoutMs);
    const transport = this.#transport!;
    const id = this.#nextId++;
    const grace = this.#o.hangGraceMs ?? 2000;
    const answer = await new Promise<FromProvider>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The provider did not even report its own timeout: it is stuck (a busy loop, a
        // blocked call). Only a restart gets it back.
        this.#pending.delete(id);
        reject(new ProviderError('timeout', `no answer within ${timeoutMs} ms; the provider was restarted`));
        this.#crashed(transport, 'it stopped answering');
      }, timeoutMs + grace);
      this.#pending.set(id, { resolve, reject, timer });
      transport.send(build(id));
    });
    if (answer.type === 'error') {
      // A provider that answers, even with an error, is alive.
      this.#failures = 0;
      throw new ProviderError(answer.error.kind, this.#explain(sanitize(answer.error.message, this.#known)));
    }
    this.#failures = 0;
    return answer;
  }

  /**
   * Waits for the provider to be ready within a call's own timeout (dso.yaml's `timeout`), not
   * the longer start limit: a backend that hangs during login fails the call when the operator
   * said it should. The start goes on in the background and the next call joins it.
   */
  async #readyWithin(timeoutMs: number): Promise<void> {
    const ready = this.#ensureReady(timeoutMs);
    // Abandoned when the call times out first: its failure is then the next call's to report.
    ready.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ProviderError('timeout', `the provider was not ready (logged in) within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #ensureReady(timeoutMs: number): Promise<void> {
    if (this.#state === 'ready' && this.#transport) return;
    if (this.#ready) return this.#ready;
    const wait = this.#retryAt - this.#now();
    if (wait > 0) {
      if (wait > timeoutMs) {
        throw new ProviderError('unavailable', `the provider is restarting after a failure (${this.#lastError ?? 'unknown'}); next attempt in ${Math.ceil(wait / 1000)} s`);
      }
      await Bun.sleep(wait);
    }
    if (this.#ready) return this.#ready;
    this.#ready = this.#start().finally(() => {
      this.#ready = undefined;
    });
    return this.#ready;
  }

  async #start(): Promise<void> {
    const settings = this.#o.settings;
    const options: TransportOptions = {
      env: this.#environment(true),
      ...(this.#o.workerUrl === undefined ? {} : { workerUrl: this.#o.workerUrl }),
      ...(this.#o.processCommand === undefined ? {} : { processCommand: this.#o.processCommand }),
      ...(settings.user === undefined ? {} : { user: settings.user }),
    };
    this.#state = 'starting';
    let transport: Transport;
    try {
      transport = settings.isolation === 'process' ? startProcess(options) : startWorker(options);
    } catch (e) {
      this.#backoff(`could not start: ${e instanceof Error ? e.message : String(e)}`);
      throw new ProviderError('crashed', `the provider could not be started: ${this.#lastError}`);
    }
    this.#transport = transport;
    const log = (level: 'debug' | 'info' | 'warn', message: string) => this.#o.log?.(level, `provider ${this.name}: ${sanitize(message, this.#known)}`);
    transport.onStderr((line) => log('debug', line));

    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ProviderError('timeout', `the provider did not start within ${(this.#o.startTimeoutMs ?? 30_000) / 1000} s`));
        this.#crashed(transport, 'it did not start in time');
      }, this.#o.startTimeoutMs ?? 30_000);
      this.#abandonStart = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      transport.onMessage((raw) => {
        const m = parseFromProvider(raw);
        if (!m) {
          log('warn', 'sent a message that does not follow the protocol; restarting it');
          this.#crashed(transport, 'it broke the protocol');
          return;
        }
        switch (m.type) {
          case 'ready':
            clearTimeout(timer);
            this.#capabilities = m.capabilities;
            this.#state = 'ready';
            resolve();
            return;
          case 'init-failed': {
            clearTimeout(timer);
            const message = this.#explain(sanitize(m.error.message, this.#known));
            reject(new ProviderError(m.error.kind, message));
            // A provider that cannot start (a bad login) is not retried at once: back off.
            this.#transport = undefined;
            transport.terminate();
            this.#backoff(message);
            // Sent after ready (a confused provider), it also ends the calls in flight: they would
            // otherwise wait out their deadline on a provider that is gone.
            this.#failAll(new ProviderError(m.error.kind, message));
            return;
          }
          case 'log':
            log(m.level, m.message);
            return;
          default: {
            const p = this.#pending.get(m.id);
            if (!p) {
              if (m.type === 'value') m.value.fill(0);
              return;
            }
            this.#pending.delete(m.id);
            clearTimeout(p.timer);
            p.resolve(m);
          }
        }
      });
      transport.onExit((reason) => {
        clearTimeout(timer);
        reject(new ProviderError('crashed', `the provider stopped while starting: ${reason}`));
        this.#crashed(transport, reason);
      });
    });
    // Who DSO is (whose files a plugin may belong to) and whom the provider's own children run as.
    const dsoUid = process.getuid?.();
    transport.send({ type: 'init', kind: settings.kind, name: settings.name, config: settings.config, ...(dsoUid === undefined ? {} : { dsoUid }), ...(settings.user === undefined ? {} : { user: settings.user }) });
    try {
      await ready;
    } finally {
      this.#abandonStart = undefined;
    }
  }

  /** `transport` died or must die: fail its calls, forget it, and back off before the next start. */
  #crashed(transport: Transport, reason: string): void {
    if (this.#transport !== transport) return;
    this.#transport = undefined;
    transport.terminate();
    if (this.#state === 'closed') return;
    this.#restarts++;
    this.#backoff(reason);
    this.#failAll(new ProviderError('crashed', `the provider stopped (${reason}); it will be restarted`));
    this.#o.log?.('warn', `provider ${this.name}: ${reason}; restarting in ${Math.max(0, this.#retryAt - this.#now())} ms`);
  }

  #backoff(reason: string): void {
    const { initialMs, maxMs } = this.#o.backoff ?? { initialMs: 200, maxMs: 30_000 };
    this.#failures++;
    this.#lastError = reason;
    this.#retryAt = this.#now() + Math.min(maxMs, initialMs * 2 ** (this.#failures - 1));
    this.#state = 'backoff';
  }

  #failAll(error: ProviderError): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(error);
      this.#pending.delete(id);
    }
  }

  /**
   * A provider refused a file (EACCES) while running as its own user under a root DSO: the file
   * is fine for root, so say who could not read it and what to do.
   */
  #explain(message: string): string {
    const user = this.#o.settings.user;
    if (!user || !/\bEACCES\b/.test(message) || process.geteuid?.() !== 0) return message;
    const who = this.#o.settings.isolation === 'process' ? 'the provider runs' : 'its plugin runs';
    return `${message}; ${who} as ${user.uid}:${user.gid} (dso.yaml user:, default nobody): make the file readable by that account, or give the provider a user that can read it`;
  }

  /** The provider's environment: its declared variables only, plus those DSO sets for it. */
  #environment(strict: boolean): Record<string, string> {
    const s = this.#o.settings;
    const out: Record<string, string> = {};
    const missing: string[] = [];
    for (const name of s.env) {
      const value = this.#o.env[name];
      if (value === undefined || value === '') missing.push(name);
      else out[name] = value;
    }
    for (const name of s.optionalEnv) {
      const value = this.#o.env[name];
      if (value !== undefined && value !== '') out[name] = value;
    }
    Object.assign(out, s.fixedEnv);
    if (strict && missing.length > 0) {
      throw new ProviderError('auth', `the provider needs ${missing.join(', ')} in DSO's environment, and ${missing.length === 1 ? 'it is' : 'they are'} not set`);
    }
    return out;
  }
}
