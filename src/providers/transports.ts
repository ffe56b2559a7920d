// The two ways a provider runs beside DSO: a Worker (cheap, shares the process) or a child
// process of the same binary (a real boundary for credentials: it holds only what DSO gives it,
// is non-dumpable, and when DSO is root runs as the provider's own user). Both carry the
// messages of src/providers/messages.ts.
import type { RunAs } from '../system/process-guard.ts';
import { encodeFrame, FrameDecoder } from './frames.ts';
import type { ToProvider } from './messages.ts';

export interface Transport {
  send(message: ToProvider): void;
  onMessage(handler: (message: unknown) => void): void;
  /** Called once when the Worker or process ends, whatever the cause. */
  onExit(handler: (reason: string) => void): void;
  /** Lines the provider wrote to stderr (process isolation only). */
  onStderr(handler: (line: string) => void): void;
  terminate(): void;
  /** The child's pid (process isolation only). */
  readonly pid?: number;
}

export interface TransportOptions {
  env: Record<string, string>;
  /** Worker isolation: the Worker script (defaults to workers/provider.ts). */
  workerUrl?: string;
  /** Process isolation: the command that starts a provider process (defaults to this binary). */
  processCommand?: string[];
  /** Process isolation, when DSO runs as root: the account the provider process drops to. */
  user?: RunAs;
}

/** The argument that tells a provider process started by root which account to drop to. */
export const USER_ARG = '--user=';

/**
 * The variables a provider process gets in its environment when it starts, because Bun reads them
 * only then: paths, never credentials. All the others reach it in its first frame, once it has
 * made itself non-dumpable (and, started by root, dropped to its user), so that no other process
 * can read them in /proc/PID/environ, even in the moment after it starts.
 */
const READ_AT_START = ['NODE_EXTRA_CA_CERTS'];

/**
 * Whether this is the compiled binary. Its code lives in Bun's embedded file system, where
 * `Bun.main` points; `import.meta.url` cannot tell (the build inlines the source path).
 */
function compiled(): boolean {
  return Bun.main.startsWith('/$bunfs/') || Bun.main.includes('~BUN');
}

/** Where the built-in provider Worker lives, from source or inside a compiled binary. */
export function defaultWorkerUrl(): string {
  // Compiled, an extra entrypoint is found by its path relative to the embedded root (measured
  // with bun 1.4.5: a file: URL built from import.meta.url points at the build machine's disk).
  return compiled() ? './workers/provider.ts' : new URL('../../workers/provider.ts', import.meta.url).href;
}

/** How this binary starts itself as a provider process. */
export function defaultProcessCommand(): string[] {
  // Compiled, the executable is DSO itself; from source, it is bun and needs the entry file.
  return compiled() ? [process.execPath, '__provider-process'] : [process.execPath, new URL('../cli/main.ts', import.meta.url).pathname, '__provider-process'];
}

export function startWorker(options: TransportOptions): Transport {
  const worker = new Worker(options.workerUrl ?? defaultWorkerUrl(), { env: options.env } as WorkerOptions);
  let exitHandler: ((reason: string) => void) | undefined;
  let exited = false;
  const exit = (reason: string) => {
    if (exited) return;
    exited = true;
    exitHandler?.(reason);
  };
  worker.addEventListener('error', (e) => {
    exit(`the provider worker failed: ${(e as ErrorEvent).message ?? 'error'}`);
    worker.terminate();
  });
  worker.addEventListener('close', () => exit('the provider worker ended'));
  return {
    send: (m) => worker.postMessage(m),
    onMessage: (h) => {
      worker.onmessage = (e) => h(e.data);
    },
    onExit: (h) => {
      exitHandler = h;
    },
    onStderr: () => {},
    terminate: () => {
      worker.terminate();
      exit('terminated');
    },
  };
}

export function startProcess(options: TransportOptions): Transport {
  const atStart: Record<string, string> = {};
  for (const name of READ_AT_START) if (options.env[name] !== undefined) atStart[name] = options.env[name];
  // Only root can make a process another user; anyone else's provider processes run as DSO does.
  const drop = options.user !== undefined && process.geteuid?.() === 0 ? [`${USER_ARG}${options.user.uid}:${options.user.gid}`] : [];
  const child = Bun.spawn([...(options.processCommand ?? defaultProcessCommand()), ...drop], {
    env: atStart,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let messageHandler: ((m: unknown) => void) | undefined;
  let stderrHandler: ((line: string) => void) | undefined;
  let exitHandler: ((reason: string) => void) | undefined;
  let exitReason: string | undefined;
  const decoder = new FrameDecoder();

  void (async () => {
    try {
      for await (const chunk of child.stdout) {
        for (const m of decoder.push(chunk)) messageHandler?.(m);
      }
    } catch {
      child.kill('SIGKILL');
    } finally {
      decoder.wipe();
    }
  })();
  void (async () => {
    let rest = '';
    const text = new TextDecoder();
    for await (const chunk of child.stderr) {
      rest += text.decode(chunk, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) stderrHandler?.(line.slice(0, 4000));
      if (rest.length > 64 * 1024) rest = '';
    }
  })();
  void child.exited.then((code) => {
    exitReason = child.signalCode ? `the provider process was killed by ${child.signalCode}` : `the provider process exited with code ${code}`;
    exitHandler?.(exitReason);
  });
  // The first frame: the provider's variables. The child reads it only once it is guarded; until
  // then the bytes wait in the pipe, in the kernel, not in its memory.
  const first = encodeFrame({ type: 'env', env: options.env });
  try {
    child.stdin.write(first);
    child.stdin.flush();
  } catch {
    // The child is gone already; its exit handler reports it.
  }
  first.fill(0);

  return {
    pid: child.pid,
    send: (m) => {
      const frame = encodeFrame(m as unknown as Record<string, unknown>);
      try {
        child.stdin.write(frame);
        child.stdin.flush();
      } catch {
        // The child is gone; its exit handler reports it.
      }
    },
    onMessage: (h) => {
      messageHandler = h;
    },
    onExit: (h) => {
      exitHandler = h;
      if (exitReason !== undefined) h(exitReason);
    },
    onStderr: (h) => {
      stderrHandler = h;
    },
    terminate: () => {
      try {
        child.stdin.end();
      } catch {}
      child.kill('SIGKILL');
    },
  };
}
