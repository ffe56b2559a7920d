// The child-process side of `isolation: process`: the same provider loop as a Worker, over
// length-prefixed frames on stdin and stdout. Started by src/providers/transports.ts as
// `dso __provider-process [--user=UID:GID]` with next to no environment. Before it reads anything,
// it makes itself non-dumpable and, started by root, drops to the provider's user; only then does
// it read its first frame, which holds this provider's variables, and serve.
import { dropPrivileges, makeNonDumpable, type RunAs } from '../system/process-guard.ts';
import { encodeFrame, FrameDecoder } from './frames.ts';
import type { ProviderModules } from './serve.ts';
import { serveProvider } from './serve.ts';
import { USER_ARG } from './transports.ts';

export async function runProviderProcess(modules: ProviderModules, argv: readonly string[] = process.argv): Promise<void> {
  const out = Bun.stdout.writer();
  const sendFrame = (message: Record<string, unknown>) => {
    const frame = encodeFrame(message);
    out.write(frame);
    out.flush();
    frame.fill(0);
  };
  /** Refuses to serve: the host reports `message` as the provider's failure to start. */
  const refuse = async (message: string): Promise<never> => {
    sendFrame({ type: 'init-failed', error: { kind: 'config', message } });
    await out.end();
    process.exit(3);
  };

  const guarded = makeNonDumpable();
  // Where prctl does not exist (macOS), there is no /proc to protect either; on Linux a provider
  // that cannot protect its memory is not given credentials.
  if (!guarded.ok && !guarded.unsupported) await refuse(`the provider process could not make itself non-dumpable: ${guarded.why}`);
  const user = userArgument(argv);
  if (user === 'invalid') await refuse(`the provider process was given a user it cannot read (${USER_ARG}UID:GID expected)`);
  else if (user) {
    try {
      dropPrivileges(user);
    } catch (e) {
      await refuse(`the provider process could not switch to user ${user.uid}:${user.gid}: ${(e as Error).message}`);
    }
  }

  // stdout carries frames: anything a provider or an SDK prints goes to stderr instead, where
  // DSO reads it as log lines.
  const toStderr = (...args: unknown[]) => process.stderr.write(`${args.map(String).join(' ')}\n`);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;

  let handler: ((message: unknown) => void) | undefined;
  let serving = false;
  const pending: unknown[] = [];
  const decoder = new FrameDecoder();
  const serve = (env: Record<string, string>) => {
    // What SDKs read from process.env (proxies, regions) must be there: exactly these variables.
    for (const name of Object.keys(process.env)) delete process.env[name];
    Object.assign(process.env, env);
    serving = true;
    serveProvider(
      {
        send: (message) => {
          sendFrame(message as Record<string, unknown>);
          if (message.type === 'value') message.value.fill(0);
        },
        onMessage: (h) => {
          handler = h;
          for (const m of pending.splice(0)) h(m);
        },
        exit: (code) => {
          decoder.wipe();
          process.exit(code);
        },
      },
      modules,
      env,
    );
  };
  for await (const chunk of Bun.stdin.stream()) {
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(chunk);
    } catch (e) {
      process.stderr.write(`provider process: ${(e as Error).message}; exiting\n`);
      process.exit(3);
    }
    for (const m of messages) {
      if (serving) handler ? handler(m) : pending.push(m);
      else {
        const env = environmentFrame(m);
        if (!env) {
          process.stderr.write('provider process: the first frame is not the environment; exiting\n');
          process.exit(3);
        }
        serve(env);
      }
    }
  }
  // DSO closed our stdin: it is gone or done with us.
  decoder.wipe();
  process.exit(0);
}

/** The account in `--user=UID:GID`, when DSO (root) gave one; 'invalid' rather than a guess. */
function userArgument(argv: readonly string[]): RunAs | 'invalid' | undefined {
  const arg = argv.find((a) => a.startsWith(USER_ARG));
  if (arg === undefined) return undefined;
  const m = arg.slice(USER_ARG.length).match(/^(\d{1,10}):(\d{1,10})$/);
  return m ? { uid: Number(m[1]), gid: Number(m[2]) } : 'invalid';
}

/** The variables of a `{type: 'env', env}` frame, or undefined when it is not one. */
function environmentFrame(m: Record<string, unknown>): Record<string, string> | undefined {
  if (m.type !== 'env' || typeof m.env !== 'object' || m.env === null || Array.isArray(m.env)) return undefined;
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(m.env)) {
    if (typeof val !== 'string') return undefined;
    env[k] = val;
  }
  return env;
}
