// The child-process side of `isolation: process`: the same provider loop as a Worker, over
// length-prefixed frames on stdin and stdout. Started by src/providers/process-transport.ts as
// `dso __provider-process` with an explicit environment holding only this provider's variables.
import { encodeFrame, FrameDecoder } from './frames.ts';
import type { ProviderModules } from './serve.ts';
import { serveProvider } from './serve.ts';

export async function runProviderProcess(modules: ProviderModules): Promise<void> {
  // stdout carries frames: anything a provider or an SDK prints goes to stderr instead, where
  // DSO reads it as log lines.
  const toStderr = (...args: unknown[]) => process.stderr.write(`${args.map(String).join(' ')}\n`);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;

  let handler: ((message: unknown) => void) | undefined;
  const pending: unknown[] = [];
  const decoder = new FrameDecoder();
  const out = Bun.stdout.writer();
  serveProvider(
    {
      send: (message) => {
        const frame = encodeFrame(message as Record<string, unknown>);
        out.write(frame);
        out.flush();
        frame.fill(0);
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
    process.env,
  );
  for await (const chunk of Bun.stdin.stream()) {
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(chunk);
    } catch (e) {
      process.stderr.write(`provider process: ${(e as Error).message}; exiting\n`);
      process.exit(3);
    }
    for (const m of messages) (handler ? handler(m) : pending.push(m));
  }
  // DSO closed our stdin: it is gone or done with us.
  decoder.wipe();
  process.exit(0);
}
