// A custom provider: DSO's side of a plugin executable. Keeps one plugin process running, starts
// it again (verifying its hash again) after it exits or misbehaves, and turns provider calls into
// protocol requests. The plugin lives and dies with this provider's Worker or process.
import { abortError } from '../../src/providers/http-status.ts';
import { ProviderError, type CreateProvider, type Provider, type ProviderContext } from '../../src/providers/contract.ts';
import type { PluginConfig } from './config.ts';
import { PluginProcess } from './process.ts';
import { isSecretPath, PREFIX, VERSION } from './protocol.ts';

/** How long a plugin has to answer its hello, each time it starts. */
const START_TIMEOUT_MS = 10_000;

export const createProvider: CreateProvider<PluginConfig> = async (config, ctx) => {
  const runner = new PluginRunner(config, ctx);
  const first = await runner.running(AbortSignal.timeout(START_TIMEOUT_MS));
  // Fixed at the first start: the host learns them once. A later start that claims less is
  // refused call by call by the plugin itself.
  const { list, versions } = first.capabilities;

  const provider: Provider = {
    capabilities: { list, watch: false, versions },
    async get(path, options) {
      // What DSO promises plugins (docs/providers/plugin.md): checked here, whoever calls.
      if (!isSecretPath(path)) {
        throw new ProviderError('config', `${JSON.stringify(path.slice(0, 100))} is not a secret path (segments of letters, digits and _ + = @ . -)`);
      }
      if (options.version !== undefined) {
        if (!versions) throw new ProviderError('config', `plugin ${config.plugin} does not support versions (its ready said capabilities.versions is false)`);
        if (!VERSION.test(options.version)) throw new ProviderError('config', 'a version is 1 to 128 letters, digits, "_", "." or "-"');
      }
      const plugin = await runner.running(options.signal);
      const got = await plugin.get(path, options.maxBytes, options.signal, options.version);
      return { value: got.value, ...(got.version === undefined ? {} : { version: got.version }) };
    },
    async close() {
      await runner.close();
    },
  };
  if (list) {
    provider.list = async (prefix, options) => {
      if (!PREFIX.test(prefix)) throw new ProviderError('config', 'a list prefix is letters, digits, "/" and _ + = @ . - (at most 1024)');
      const plugin = await runner.running(options.signal);
      const names = (await plugin.list(prefix, options.signal)).names;
      // Names DSO could not ask for are of no use, and could carry terminal control codes.
      const usable = names.filter(isSecretPath);
      if (usable.length < names.length) ctx.log('warn', `plugin ${config.plugin} listed ${names.length - usable.length} names that are not secret paths; they were left out`);
      return usable;
    };
  }
  return provider;
};

/** The current plugin process, started on demand, one start at a time. */
class PluginRunner {
  readonly #config: PluginConfig;
  readonly #ctx: ProviderContext;
  #current?: PluginProcess;
  #starting?: Promise<PluginProcess>;
  #closed = false;

  constructor(config: PluginConfig, ctx: ProviderContext) {
    this.#config = config;
    this.#ctx = ctx;
  }

  /** A running plugin: the current one, or a new one, verified and greeted. */
  async running(signal: AbortSignal): Promise<PluginProcess> {
    if (this.#closed) throw new ProviderError('unavailable', 'the provider was closed');
    if (this.#current?.alive) return this.#current;
    this.#starting ??= PluginProcess.start(
      {
        name: this.#ctx.name,
        location: { plugin: this.#config.plugin, sha256: this.#config.sha256, plugin_dir: this.#config.plugin_dir },
        settings: this.#config.settings,
        env: this.#ctx.env,
        log: this.#ctx.log,
        ...(this.#ctx.dsoUid === undefined ? {} : { dsoUid: this.#ctx.dsoUid }),
        ...(this.#ctx.user === undefined ? {} : { user: this.#ctx.user }),
      },
      // Its own limit, not the first caller's signal: a caller that gives up must not fail the
      // start for the others waiting on it.
      AbortSignal.timeout(START_TIMEOUT_MS),
    )
      .then((p) => {
        if (this.#closed) {
          p.kill(new ProviderError('unavailable', 'the provider was closed'));
          throw new ProviderError('unavailable', 'the provider was closed');
        }
        this.#current = p;
        return p;
      })
      .finally(() => {
        this.#starting = undefined;
      });
    const starting = this.#starting;
    return new Promise<PluginProcess>((resolve, reject) => {
      const onAbort = () => reject(abortError(signal, `starting plugin ${this.#config.plugin}`));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      starting.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#starting?.catch(() => {});
    await this.#current?.stop();
    this.#current = undefined;
  }
}
