// The local encrypted vault: create, open, read and change the secrets in one vault file.
//
// Reads need no lock (writes replace the file by rename, so a reader sees a whole file). Every change
// takes the lock, re-reads the file (another process may have written since we opened it), applies the
// change to what is on disk now, and writes a new file with a fresh nonce. In memory we keep the key, a
// copy of the passphrase (to re-derive if the file's salt or KDF parameters change under us) and one
// decrypted plaintext buffer that every value is a view into; close() wipes all three.

import { closeSync, fstatSync, lstatSync, mkdirSync, chmodSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import { DsoError, fsReason } from '../errors.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { withLock } from './file-lock.ts';
import {
  decodeRecords,
  encodedSize,
  encodeHeader,
  encodeRecords,
  compareNames,
  equalBytes,
  MAX_FILE_BYTES,
  MAX_PLAINTEXT_BYTES,
  MAX_VALUE_BYTES,
  NONCE_LENGTH,
  parseVaultFile,
  SALT_LENGTH,
  type ParsedVaultFile,
  type VaultHeader,
  type VaultRecord,
} from './format.ts';
import { DEFAULT_KDF_PARAMS, deriveKeys, kdfParamsProblem, type KdfParams } from './kdf.ts';
import { validateSecretName } from './names.ts';

export type { KdfParams } from './kdf.ts';
export { DEFAULT_KDF_PARAMS } from './kdf.ts';

export interface VaultEntryInfo {
  name: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface VaultOptions {
  /** How long a change waits for another process's change before VAULT_LOCKED. Default 30 s. */
  lockTimeoutMs?: number;
  /** Clock for entry timestamps, in ms since the epoch. Default Date.now. */
  now?: () => number;
}

/** The lock file that serialises changes to the vault at `vaultPath`. */
export function lockPathFor(vaultPath: string): string {
  return `${vaultPath}.lock`;
}

/** What the key depends on, kept together so a change of salt or parameters on disk is noticed. */
interface KeyState {
  salt: Uint8Array;
  kdf: KdfParams;
  keyCheck: Uint8Array;
  key: Uint8Array;
}

export class LocalVault {
  readonly path: string;
  readonly #lockPath: string;
  readonly #options: VaultOptions;
  #passphrase: Uint8Array;
  #keys: KeyState;
  #plaintext: Uint8Array;
  #records: Map<string, VaultRecord>;
  #closed = false;

  /** Takes ownership of `passphrase`, `keys` and `plaintext`: close() wipes them. */
  private constructor(
    path: string,
    passphrase: Uint8Array,
    keys: KeyState,
    plaintext: Uint8Array,
    options: VaultOptions,
  ) {
    this.path = path;
    this.#lockPath = lockPathFor(path);
    this.#options = options;
    this.#passphrase = passphrase;
    this.#keys = keys;
    this.#plaintext = plaintext;
    this.#records = indexRecords(decodeRecords(plaintext, path));
  }

  /** Creates a new empty vault file (dir created 0700, file 0600). Throws VAULT_EXISTS if present. */
  static async create(
    path: string,
    passphrase: Uint8Array,
    opts: VaultOptions & { kdf?: KdfParams } = {},
  ): Promise<LocalVault> {
    const kdf = { ...(opts.kdf ?? DEFAULT_KDF_PARAMS) };
    const problem = kdfParamsProblem(kdf);
    if (problem !== undefined) {
      throw new DsoError('USAGE', `cannot create vault ${path}: argon2id ${problem}`, {
        hint: 'use the default KDF parameters unless you have measured others',
      });
    }
    if (pathExists(path)) throw vaultExists(path);

    // Derive before taking the lock: the salt is ours alone, and the lock should be held briefly.
    const salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
    const { key, keyCheck } = await deriveKeys(passphrase, salt, kdf);
    const keys: KeyState = { salt, kdf, keyCheck, key };
    const plaintext = encodeRecords([]);
    try {
      ensurePrivateDirectory(dirname(path));
      await withLock(
        lockPathFor(path),
        async () => {
          if (pathExists(path)) throw vaultExists(path);
          await writeSealed(path, keys, plaintext);
        },
        { timeoutMs: opts.lockTimeoutMs },
      );
    } catch (error) {
      wipeAll(key, plaintext);
      throw error;
    }
    return new LocalVault(path, new Uint8Array(passphrase), keys, plaintext, pickOptions(opts));
  }

  /** Reads, checks and decrypts. Throws VAULT_NOT_FOUND (hint: run `docker dso init`), or the format errors. */
  static async open(path: string, passphrase: Uint8Array, opts: VaultOptions = {}): Promise<LocalVault> {
    const parsed = parseVaultFile(readVaultFile(path), path);
    const keys = await unlock(path, passphrase, parsed.header);
    let plaintext: Uint8Array | undefined;
    let passphraseCopy: Uint8Array | undefined;
    try {
      plaintext = unseal(path, keys.key, parsed);
      passphraseCopy = new Uint8Array(passphrase);
      return new LocalVault(path, passphraseCopy, keys, plaintext, pickOptions(opts));
    } catch (error) {
      wipeAll(keys.key, plaintext, passphraseCopy);
      throw error;
    }
  }

  /** Entries as of open or this instance's last change, sorted by name. Never values. */
  list(): VaultEntryInfo[] {
    this.#assertOpen();
    return [...this.#records.values()]
      .sort((a, b) => compareNames(a.name, b.name))
      .map((r) => ({
        name: r.name,
        size: r.value.length,
        createdAt: new Date(r.createdMs),
        updatedAt: new Date(r.updatedMs),
      }));
  }

  has(name: string): boolean {
    this.#assertOpen();
    return this.#records.has(name);
  }

  /** A copy owned by the caller, who wipes it. Throws SECRET_NOT_FOUND if absent. */
  get(name: string): SecretBytes {
    this.#assertOpen();
    const record = this.#records.get(name);
    if (record === undefined) {
      throw new DsoError('SECRET_NOT_FOUND', `secret ${JSON.stringify(name)} is not in the vault ${this.path}`, {
        hint: 'check the name (names are case-sensitive) against the vault listing, or add the secret first',
      });
    }
    return SecretBytes.copyOf(record.value);
  }

  /**
   * Stores `value` under `name`, keeping the creation time of an existing entry. `value` is copied at once
   * and not retained; the caller still owns (and wipes) its buffer.
   */
  async set(name: string, value: Uint8Array): Promise<void> {
    this.#assertOpen();
    validateSecretName(name);
    if (value.length > MAX_VALUE_BYTES) throw valueTooLarge(name, value.length);
    // Copied now, not when the lock is granted: the caller may reuse its buffer as soon as we return a promise.
    const own = new Uint8Array(value); // a copy even when `value` is a Buffer (whose slice() is a view)
    try {
      await this.#change((records) => {
        const now = (this.#options.now ?? Date.now)();
        const existing = records.get(name);
        records.set(name, { name, createdMs: existing?.createdMs ?? now, updatedMs: now, value: own });
        const size = encodedSize(records.values());
        if (size > MAX_PLAINTEXT_BYTES) {
          throw new DsoError(
            'USAGE',
            `adding secret ${JSON.stringify(name)} would grow vault ${this.path} past ${MAX_PLAINTEXT_BYTES} bytes`,
            { hint: 'remove secrets you no longer need, or keep large files outside the vault' },
          );
        }
        return true;
      });
    } finally {
      wipeAll(own);
    }
  }

  /**
   * Stores several secrets with one read, one encryption and one write, for imports: every `set` rewrites
   * the whole file, so n of them cost O(n²). Same checks and copies as `set`; all or nothing.
   */
  async setMany(entries: Iterable<readonly [string, Uint8Array]>): Promise<void> {
    this.#assertOpen();
    const own = new Map<string, Uint8Array>();
    try {
      for (const [name, value] of entries) {
        validateSecretName(name);
        if (value.length > MAX_VALUE_BYTES) throw valueTooLarge(name, value.length);
        wipeAll(own.get(name));
        own.set(name, new Uint8Array(value));
      }
      if (own.size === 0) return;
      await this.#change((records) => {
        const now = (this.#options.now ?? Date.now)();
        for (const [name, value] of own) {
          records.set(name, { name, createdMs: records.get(name)?.createdMs ?? now, updatedMs: now, value });
        }
        const size = encodedSize(records.values());
        if (size > MAX_PLAINTEXT_BYTES) {
          throw new DsoError('USAGE', `adding ${own.size} secrets would grow vault ${this.path} past ${MAX_PLAINTEXT_BYTES} bytes`, {
            hint: 'remove secrets you no longer need, or keep large files outside the vault',
          });
        }
        return true;
      });
    } finally {
      wipeAll(...own.values());
    }
  }

  /** Removes `name`. Returns false, writing nothing, if the vault on disk does not have it. */
  async remove(name: string): Promise<boolean> {
    this.#assertOpen();
    return this.#change((records) => records.delete(name));
  }

  /** Re-reads the file, picking up what other processes changed since open, with the key already derived. */
  async reload(): Promise<void> {
    this.#assertOpen();
    await this.#change(() => false);
  }

  /** Wipes the key, the passphrase copy and the decrypted plaintext. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    wipeAll(this.#keys.key, this.#passphrase, this.#plaintext);
    this.#records.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * The read-modify-write every change goes through, under the lock. `apply` edits the records as they
   * are on disk now and says whether anything changed. Memory is updated only after the write succeeded.
   */
  async #change(apply: (records: Map<string, VaultRecord>) => boolean): Promise<boolean> {
    return withLock(
      this.#lockPath,
      async () => {
        const parsed = parseVaultFile(readVaultFile(this.path), this.path);
        const keys = await this.#keysFor(parsed.header);
        const current = unseal(this.path, keys.key, parsed);
        let next: Uint8Array | undefined;
        let adopted: Uint8Array | undefined;
        try {
          const records = indexRecords(decodeRecords(current, this.path));
          if (!apply(records)) {
            adopted = current; // nothing to write, but what we just read is the freshest view
            return false;
          }
          next = encodeRecords([...records.values()]);
          await writeSealed(this.path, keys, next);
          adopted = next;
          return true;
        } finally {
          if (adopted !== undefined) this.#adopt(adopted);
          if (adopted !== current) wipeAll(current);
          if (adopted !== next) wipeAll(next);
        }
      },
      { timeoutMs: this.#options.lockTimeoutMs },
    );
  }

  /** Makes `plaintext` the in-memory state, wiping the one it replaces. */
  #adopt(plaintext: Uint8Array): void {
    const records = indexRecords(decodeRecords(plaintext, this.path));
    wipeAll(this.#plaintext);
    this.#plaintext = plaintext;
    this.#records = records;
  }

  /**
   * The key for the file as it is on disk now. The salt never changes in a vault's life, so the key from
   * open is normally reused; if the vault was replaced or re-keyed meanwhile, derive again.
   */
  async #keysFor(header: VaultHeader): Promise<KeyState> {
    const k = this.#keys;
    if (equalBytes(k.salt, header.salt) && sameKdf(k.kdf, header.kdf) && equalBytes(k.keyCheck, header.keyCheck)) {
      return k;
    }
    const why = 'the vault was replaced or re-keyed since it was opened';
    const fresh = await unlock(this.path, this.#passphrase, header, why);
    wipeAll(k.key);
    this.#keys = fresh;
    return fresh;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new DsoError('INTERNAL', `the vault ${this.path} was used after close()`);
    }
  }
}

function valueTooLarge(name: string, length: number): DsoError {
  return new DsoError('USAGE', `the value for secret ${JSON.stringify(name)} is ${length} bytes; the limit is ${MAX_VALUE_BYTES}`, {
    hint: 'store large files elsewhere and keep only their key or password in the vault',
  });
}

/** Derives the key for `header` and checks it against the stored key check: the wrong-passphrase test. */
async function unlock(path: string, passphrase: Uint8Array, header: VaultHeader, why?: string): Promise<KeyState> {
  const { key, keyCheck } = await deriveKeys(passphrase, header.salt, header.kdf);
  if (!equalBytes(keyCheck, header.keyCheck)) {
    wipeAll(key);
    throw new DsoError('VAULT_WRONG_PASSPHRASE', `wrong passphrase for vault ${path}${why ? ` (${why})` : ''}`, {
      hint: 'try again with the passphrase the vault was created with',
    });
  }
  return { salt: header.salt, kdf: { ...header.kdf }, keyCheck, key };
}

/** Decrypts the body. The key check already passed, so a failure here means the file was modified. */
function unseal(path: string, key: Uint8Array, parsed: ParsedVaultFile): Uint8Array {
  try {
    return gcm(key, parsed.header.nonce, parsed.headerBytes).decrypt(parsed.sealed);
  } catch (error) {
    throw new DsoError(
      'VAULT_TAMPERED',
      `vault ${path} failed authentication: the passphrase is right, but the file was modified after DSO wrote it`,
      {
        hint: 'restore the vault from a backup; if nobody edited it on purpose, find out what else could write to it',
        cause: error,
      },
    );
  }
}

/** Encrypts `plaintext` with a fresh random nonce and atomically replaces the vault file. */
async function writeSealed(path: string, keys: KeyState, plaintext: Uint8Array): Promise<void> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
  const header = encodeHeader({
    kdf: keys.kdf,
    salt: keys.salt,
    keyCheck: keys.keyCheck,
    nonce,
    ciphertextLength: plaintext.length,
  });
  const sealed = gcm(keys.key, nonce, header).encrypt(plaintext);
  const file = new Uint8Array(header.length + sealed.length);
  file.set(header, 0);
  file.set(sealed, header.length);
  try {
    await writeFileAtomic(path, file, { mode: 0o600 });
  } catch (error) {
    const message = `cannot write vault ${path}: ${fsReason(error)}; the vault on disk is unchanged`;
    throw new DsoError('VAULT_IO', message, {
      hint: 'check free disk space and that you own the vault directory, then retry',
      cause: error,
    });
  }
}

/** Reads the whole vault file, refusing anything that is not a regular file or is larger than a vault can be. */
function readVaultFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      throw new DsoError('VAULT_NOT_FOUND', `no vault at ${path}`, {
        hint: 'run `docker dso init` to create one, or point DSO at the existing vault',
      });
    }
    throw new DsoError('VAULT_IO', `cannot read vault ${path}: ${fsReason(error)}`, {
      hint: 'check that you own the vault file and its directory',
      cause: error,
    });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new DsoError('VAULT_IO', `vault ${path} is not a regular file`, { hint: 'point DSO at the vault file' });
    }
    if (stat.size > MAX_FILE_BYTES) {
      const message = `vault ${path} is corrupt: it is ${stat.size} bytes, more than a vault can be`;
      throw new DsoError('VAULT_CORRUPT', message, {
        hint: 'check that this is the vault file; restore it from a backup',
      });
    }
    const buffer = new Uint8Array(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break; // shrank while we read: the parser reports it as truncated
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** Creates the vault directory owner-only. An existing directory is left as its owner set it. */
function ensurePrivateDirectory(dir: string): void {
  try {
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode passes through the umask, which may be odd; say exactly what we mean.
    if (created !== undefined) chmodSync(dir, 0o700);
  } catch (error) {
    throw new DsoError('VAULT_IO', `cannot create the vault directory ${dir}: ${fsReason(error)}`, {
      hint: 'check that you may write to its parent directory',
      cause: error,
    });
  }
}

function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw new DsoError('VAULT_IO', `cannot check for a vault at ${path}: ${fsReason(error)}`, {
      hint: 'check that you own the vault directory',
      cause: error,
    });
  }
}

function vaultExists(path: string): DsoError {
  return new DsoError('VAULT_EXISTS', `a vault already exists at ${path}`, {
    hint:
      'open it with its passphrase; to start over, move the old file away first ' +
      '(its secrets cannot be recovered without its passphrase)',
  });
}

function indexRecords(records: VaultRecord[]): Map<string, VaultRecord> {
  return new Map(records.map((r) => [r.name, r]));
}

function sameKdf(a: KdfParams, b: KdfParams): boolean {
  return a.memoryKiB === b.memoryKiB && a.iterations === b.iterations && a.parallelism === b.parallelism;
}

/** Keeps only the options this class reads, so a caller's object (maybe holding a `kdf`) is not retained. */
function pickOptions(opts: VaultOptions): VaultOptions {
  return { lockTimeoutMs: opts.lockTimeoutMs, now: opts.now };
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'unknown error';
}
