// Worker entrypoint for a provider with `isolation: worker`: only wires the Worker's message port
// to the shared provider loop. Started by src/providers/worker-transport.ts with an `env` that
// holds only this provider's variables.
import { loadClient, loadDefinition } from '../src/providers/registry.ts';
import { serveProvider } from '../src/providers/serve.ts';

declare const self: Worker;

serveProvider(
  {
    send: (message, transfer) => self.postMessage(message, transfer ?? []),
    onMessage: (handler) => {
      self.onmessage = (event: MessageEvent) => handler(event.data);
    },
    exit: (code) => process.exit(code),
  },
  { loadDefinition, loadClient },
  process.env,
);
