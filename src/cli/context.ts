// What a command may touch of the outside world, built once by the entry point and passed down,
// so commands never read globals and tests can run them in-process.
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Output {
  write(chunk: string | Uint8Array): void;
  readonly isTTY: boolean;
}

export interface Cli {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  stdout: Output;
  stderr: Output;
  stdinIsTTY: boolean;
  /** Reads all of stdin as bytes (for secret values piped in). */
  readStdin(): Promise<Uint8Array>;
  /** The invoked name for help texts: `docker dso` as a plugin, `dso` otherwise. */
  prog: string;
}

/** `$DSO_HOME`, else `~/.dso`. */
export function dsoHome(env: Cli['env']): string {
  return env.DSO_HOME || join(env.HOME || homedir(), '.dso');
}

export function vaultPath(env: Cli['env']): string {
  return join(dsoHome(env), 'vault.enc');
}
