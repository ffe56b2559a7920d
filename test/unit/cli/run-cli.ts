// Runs the CLI in-process, as the binary's entry point does, with captured output: for the tests
// of what a user reads (help, errors, suggestions, completion answers).
import { main } from '../../../src/cli/main.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(argv: string[], opts: { env?: Record<string, string>; argv0?: string; cwd?: string } = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const decode = (chunk: string | Uint8Array) => (typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk));
  const code = await main(
    argv,
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', ...opts.env },
      cwd: opts.cwd ?? process.cwd(),
      stdout: { write: (c) => void (stdout += decode(c)), isTTY: false },
      stderr: { write: (c) => void (stderr += decode(c)), isTTY: false },
      stdinIsTTY: false,
      readStdin: async () => new Uint8Array(),
    },
    opts.argv0 ?? 'dso',
  );
  return { code, stdout, stderr };
}
