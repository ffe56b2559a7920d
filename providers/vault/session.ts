// The Vault token the provider reads with, kept alive: obtained at start, renewed (renew-self)
// before its TTL runs out while Vault allows, replaced by a new login when it cannot be renewed
// or has expired, and checked with lookup-self when Vault answers 403, to tell a dead token
// (replace it, retry once) from a path the token's policies deny.
import { ProviderError, type ProviderContext } from '../../src/providers/contract.ts';
import { callOptions, leaseFromAuth, type TokenLease, type VaultApi } from './api.ts';
import { vaultAnswer, vaultError } from './errors.ts';
import type { AuthMethod } from './login.ts';

/** Renew (or log in again) when this much of the TTL has passed, as Vault's own clients do. */
const RENEW_AT = 2 / 3;
const MIN_DELAY_MS = 250;
/** The limit of a renewal or login made by a timer, with no caller waiting. */
const BACKGROUND_CALL_MS = 30_000;
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;

export interface SessionOptions {
  log: ProviderContext['log'];
  now?: () => number;
}

export class Session {
  readonly #api: VaultApi;
  readonly #method: AuthMethod;
  readonly #log: ProviderContext['log'];
  readonly #now: () => number;
  #token = '';
  #ttlSeconds = 0;
  /** When the token expires (ms), or undefined when it never does. */
  #expiresAt: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #replacing: Promise<void> | undefined;
  #failures = 0;
  #closed = false;

  constructor(api: VaultApi, method: AuthMethod, options: SessionOptions) {
    this.#api = api;
    this.#method = method;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /** The first login (or token lookup): a failure here is what a bad dso.yaml shows as. */
  async start(signal: AbortSignal): Promise<void> {
    await this.#replace(signal);
  }

  /** The token for the next request, replaced first when it is known to have expired. */
  async token(signal: AbortSignal): Promise<string> {
    if (this.#closed) throw new ProviderError('unavailable', 'the Vault provider was closed');
    if (this.#expiresAt !== undefined && this.#now() >= this.#expiresAt && this.#method.canReplace) await this.#replaceOnce(signal);
    return this.#token;
  }

  /** The token held, to remove from messages. */
  known(): string[] {
    return this.#token === '' ? [] : [this.#token];
  }

  /**
   * After Vault answered 403 to a request made with `used`: true when that token was dead and a
   * new one is ready (retry once), false when it is valid (the path is denied). Throws `auth`
   * when the token is dead and cannot be replaced, or the new login fails.
   */
  async recover(used: string, signal: AbortSignal): Promise<boolean> {
    // A replacement under way (another call's, or the timer's) is awaited rather than repeated.
    if (this.#replacing) await this.#replacing;
    if (used !== this.#token) return true;
    if (await this.#isValid(used, signal)) return false;
    if (used !== this.#token) return true; // replaced while it was being looked up
    if (!this.#method.canReplace) throw new ProviderError('auth', `${this.#method.describe} is no longer valid (expired or revoked); give DSO a new token`);
    await this.#replaceOnce(signal);
    return true;
  }

  /** Stops the timers and drops the token. Nothing is revoked: the token simply runs out. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    // A JavaScript string cannot be wiped; dropping the only reference is what can be done.
    this.#token = '';
  }

  async #isValid(token: string, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#api.tokenLookupSelf({ requestOptions: callOptions(token, signal) });
      return true;
    } catch (e) {
      // Vault answers 403 to a token it does not know (expired, revoked, wrong namespace).
      if (vaultAnswer(e)?.status === 403) return false;
      throw vaultError(e, 'checking the Vault token (auth/token/lookup-self)', [token]);
    }
  }

  /** One replacement at a time: calls that find the token dead together share the new login. */
  #replaceOnce(signal: AbortSignal): Promise<void> {
    this.#replacing ??= this.#replace(signal).finally(() => {
      this.#replacing = undefined;
    });
    return this.#replacing;
  }

  async #replace(signal: AbortSignal): Promise<void> {
    const lease = await this.#method.obtain(signal);
    if (this.#closed) return;
    this.#failures = 0;
    this.#adopt(lease, false);
    this.#log('info', `${this.#method.describe}: token ${lease.ttlSeconds === 0 ? 'does not expire' : `valid for ${lease.ttlSeconds} s${lease.renewable ? ', renewable' : ', not renewable'}`}`);
  }

  /** `capped`: a renewal gave less time than before, so the token is near its max TTL. */
  #adopt(lease: TokenLease, capped: boolean): void {
    this.#token = lease.token;
    this.#ttlSeconds = lease.ttlSeconds;
    this.#expiresAt = lease.ttlSeconds > 0 ? this.#now() + lease.ttlSeconds * 1000 : undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (lease.ttlSeconds === 0) return;
    const delay = Math.max(MIN_DELAY_MS, lease.ttlSeconds * 1000 * RENEW_AT);
    if (lease.renewable && !capped) this.#later(delay, () => this.#renew());
    else if (this.#method.loginBeforeExpiry) this.#later(delay, () => this.#loginAgain());
    else this.#log('warn', `${this.#method.describe}: the token cannot be ${capped ? 'renewed past its max TTL' : 'renewed'} and expires in ${lease.ttlSeconds} s; then give DSO a new one`);
  }

  #later(ms: number, run: () => Promise<void>): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) void run();
    }, ms);
    // The Worker or process lives for its messages, not for this timer.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #renew(): Promise<void> {
    const token = this.#token;
    const before = this.#ttlSeconds;
    let lease: TokenLease;
    try {
      const body = await this.#api.tokenRenewSelf({ requestOptions: callOptions(token, AbortSignal.timeout(BACKGROUND_CALL_MS)) });
      lease = leaseFromAuth(body, 'renewing the Vault token');
    } catch (e) {
      if (this.#closed || token !== this.#token) return;
      const error = vaultError(e, 'renewing the Vault token (auth/token/renew-self)', [token]);
      this.#log('warn', error.message);
      // Vault answers 400 "lease is not renewable" or 403 for a token it no longer knows.
      if (this.#method.loginBeforeExpiry) return this.#loginAgain();
      return this.#retry(() => this.#renew());
    }
    if (this.#closed || token !== this.#token) return;
    this.#failures = 0;
    // renew-self answers with the same token; a changed one is adopted all the same.
    this.#adopt(lease, lease.ttlSeconds < before);
    this.#log('debug', `renewed the Vault token; valid for ${lease.ttlSeconds} s`);
  }

  async #loginAgain(): Promise<void> {
    try {
      await this.#replaceOnce(AbortSignal.timeout(BACKGROUND_CALL_MS));
    } catch (e) {
      if (this.#closed) return;
      this.#log('warn', `${this.#method.describe} failed; trying again later: ${e instanceof Error ? e.message : String(e)}`);
      this.#retry(() => this.#loginAgain());
    }
  }

  /** Tries `run` again after a backoff, while the token may still be saved (or a login may still work). */
  #retry(run: () => Promise<void>): void {
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.#failures++);
    const left = this.#expiresAt === undefined ? Number.POSITIVE_INFINITY : this.#expiresAt - this.#now();
    if (!this.#method.loginBeforeExpiry && left < delay) return; // it will be dead by then; the next request says so
    this.#later(delay, run);
  }
}
