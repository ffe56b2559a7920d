// Turns the vault passphrase into the encryption key and the key-check value with argon2id (hash-wasm).

import { argon2id } from 'hash-wasm';
import { DsoError } from '../errors.ts';
import { wipeAll } from '../secrets/secret-bytes.ts';

export interface KdfParams {
  memoryKiB: number;
  iterations: number;
  parallelism: number;
}

/**
 * RFC 9106 section 4, second recommended option (64 MiB, t=3, p=4). Measured on this project's machines
 * (x86_64, hash-wasm 4.13, Bun 1.4.5): about 400 ms per derivation. hash-wasm runs the lanes on one thread,
 * so p=4 costs no extra wall time here but does bind an attacker's derivations to this parameter set.
 */
export const DEFAULT_KDF_PARAMS: Readonly<KdfParams> = Object.freeze({
  memoryKiB: 65536,
  iterations: 3,
  parallelism: 4,
});

/**
 * What a vault file may ask for. The ceiling exists because the parameters are read from the file before
 * anything is authenticated: a crafted file must not make us allocate 4 TiB or spin for hours.
 * At the ceiling (1 GiB, t=16) a derivation takes roughly half a minute here, which is bounded.
 */
export const KDF_LIMITS = Object.freeze({
  maxMemoryKiB: 1024 * 1024,
  maxIterations: 16,
  maxParallelism: 16,
});

export const KEY_LENGTH = 32;
export const KEY_CHECK_LENGTH = 32;

/** Returns why `params` are unusable, or undefined when they are fine. Pure, so callers pick the error code. */
export function kdfParamsProblem(params: KdfParams): string | undefined {
  const { memoryKiB, iterations, parallelism } = params;
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > KDF_LIMITS.maxParallelism) {
    return `parallelism ${parallelism} is outside 1..${KDF_LIMITS.maxParallelism}`;
  }
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > KDF_LIMITS.maxIterations) {
    return `iterations ${iterations} is outside 1..${KDF_LIMITS.maxIterations}`;
  }
  // Argon2 needs at least 8 KiB per lane.
  const minMemory = 8 * parallelism;
  if (!Number.isInteger(memoryKiB) || memoryKiB < minMemory || memoryKiB > KDF_LIMITS.maxMemoryKiB) {
    return `memory ${memoryKiB} KiB is outside ${minMemory}..${KDF_LIMITS.maxMemoryKiB} KiB`;
  }
  return undefined;
}

export interface DerivedKeys {
  /** AES-256-GCM key. The caller owns it and wipes it. */
  key: Uint8Array;
  /** Stored in the header so a wrong passphrase is told apart from a tampered body. Not secret on its own. */
  keyCheck: Uint8Array;
}

/**
 * Derives 64 bytes with argon2id and splits them: the first 32 are the key, the last 32 the key check.
 * They are two halves of one BLAKE2b-512 output, so publishing the check half reveals nothing of the key half.
 *
 * The passphrase is only read. hash-wasm copies it into WebAssembly memory that we cannot reach to wipe;
 * that memory is dropped with the instance after the call but stays in the heap until reused.
 */
export async function deriveKeys(passphrase: Uint8Array, salt: Uint8Array, params: KdfParams): Promise<DerivedKeys> {
  if (passphrase.length === 0) {
    throw new DsoError('PASSPHRASE_REQUIRED', 'the vault passphrase is empty', {
      hint: 'give a non-empty passphrase',
    });
  }
  const problem = kdfParamsProblem(params);
  if (problem !== undefined) throw new RangeError(`argon2id parameters refused: ${problem}`);

  const out = await argon2id({
    password: passphrase,
    salt,
    memorySize: params.memoryKiB,
    iterations: params.iterations,
    parallelism: params.parallelism,
    hashLength: KEY_LENGTH + KEY_CHECK_LENGTH,
    outputType: 'binary',
  });
  try {
    return { key: out.slice(0, KEY_LENGTH), keyCheck: out.slice(KEY_LENGTH) };
  } finally {
    wipeAll(out);
  }
}
