// Worker entrypoint for a provider with `isolation: worker`. Started by
// src/providers/transports.ts with an `env` that holds only this provider's variables.
import { loadClient, loadDefinition } from '../src/providers/registry.ts';
import { serveInWorker } from '../src/providers/serve.ts';

serveInWorker({ loadDefinition, loadClient });
