// One running plugin executable: verified and started with exactly the provider's environment,
// greeted, then asked for values by id over its stdin and stdout. Anything it does wrong (exit,
// a line outside the protocol, an answer to a question never asked) ends it and fails the calls
// in flight with the matching error kind; the caller starts a new one on the next call.
import { existsSync } from 'node:fs';
import * as v from 'valibot';
import { SAFE_MESSAGES } from '../../src/config/issues.ts';
import { ProviderError, type ProviderContext } from '../../src/providers/contract.ts';
import { abortError } from '../../src/providers/http-status.ts';
import { LineReader } from './lines.ts';
import { answerSchema, getLine, handshakeSchema, helloLine, idFromHead, lineLimit, LIST_LINE_BYTES, listLine, printable, SMALL_LINE_BYTES, type Answer } from './protocol.ts';
import { extractValue } from './value-field.ts';
import { verifyPlugin, type PluginLocation } from './verify.ts';

export interface PluginProcessOptions {
  /** The provider's name in dso.yaml, for messages. */
  name: string;
  location: PluginLocation;
  settings: Record<string, unknown>;
  /** The plugin's whole environment: the provider's declared variables, nothing else. */
  env: Readonly<Record<string, string>>;
  log: ProviderContext['log'];
  /** The uid DSO runs as: a plugin file it owns is trusted like one root owns. */
  dsoUid?: number;
  /** Who the plugin runs as when this process is root (dso.yaml's `user:`). */
  user?: ProviderContext['user'];
}

export type PluginAnswer = { type: 'value'; value: Uint8Array; version?: string } | { type: 'names'; names: string[] };

interface Pending {
  type: 'get' | 'list';
  maxBytes: number;
  resolve(answer: PluginAnswer): void;
  reject(error: ProviderError): void;
}

/** The longest stderr line forwarded to the log; longer ones are cut. */
const MAX_LOG_LINE = 1000;
/** How long a plugin has to exit by itself once its stdin is closed, before it is killed. */
const STOP_GRACE_MS = 500;

export class PluginProcess {
  readonly pid: number;
  readonly path: string;
  capabilities = { list: false, versions: false };
  readonly #o: PluginProcessOptions;
  readonly #child: Bun.Subprocess<'pipe', 'pipe', 'pipe'>;
  readonly #reader: LineReader;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #largestMax = 0;
  #ended?: ProviderError;
  #handshake?: { resolve(): void; reject(e: ProviderError): void };
  readonly #killOnExit = () => this.#killGroup();

  /**
   * Verifies the plugin, starts it and waits for its `ready`. Throws ProviderError: `config` when
   * the file fails a check (it is then not run at all), else the kind of what went wrong.
   */
  static async start(options: PluginProcessOptions, signal: AbortSignal): Promise<PluginProcess> {
    if (signal.aborted) throw abortError(signal, `starting plugin ${options.location.plugin}`);
    const verified = await verifyPlugin(options.location, options.dsoUid);
    let plugin: PluginProcess;
    try {
      plugin = new PluginProcess(options, verified.path, spawn(verified.handle.fd, verified.realPath, verified.dir, options.env, options.user));
    } catch (e) {
      throw new ProviderError('config', `plugin ${verified.path} could not be started: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    } finally {
      // The child holds its own copy of the descriptor.
      await verified.handle.close().catch(() => {});
    }
    await plugin.#greet(signal);
    return plugin;
  }

  private constructor(options: PluginProcessOptions, path: string, child: Bun.Subprocess<'pipe', 'pipe', 'pipe'>) {
    this.#o = options;
    this.path = path;
    this.#child = child;
    this.pid = child.pid;
    // Also when the provider's Worker or process ends without close(): the plugin must not outlive it.
    process.on('exit', this.#killOnExit);
    // Once it has failed, whatever else it wrote is ignored (and zeroed by the reader).
    this.#reader = new LineReader(SMALL_LINE_BYTES, {
      line: (bytes) => {
        if (!this.#ended) (this.#handshake ? this.#onHandshake(bytes) : this.#onAnswer(bytes));
      },
      oversized: (head) => {
        if (!this.#ended) this.#onOversized(head);
      },
    });
    const stdoutDone = this.#readStdout();
    void this.#readStderr();
    void (async () => {
      // Either end means no more answers. But a plugin that answers and exits at once (an error
      // in its handshake, say) may be seen exiting before its last line is read: give the pipe a
      // moment to drain so that its own error, not "crashed", is what the caller gets.
      await Promise.race([child.exited, stdoutDone]);
      await Promise.race([Promise.all([child.exited, stdoutDone]), Bun.sleep(200)]);
      const how = child.signalCode ? `was killed by ${child.signalCode}` : child.exitCode !== null ? `exited with code ${child.exitCode}` : 'closed its output';
      this.#end(new ProviderError('crashed', `plugin ${path} ${how}; it will be started again on the next call`));
    })();
  }

  get alive(): boolean {
    return this.#ended === undefined;
  }

  /** The value at `path`; the caller owns the bytes. */
  get(path: string, maxBytes: number, signal: AbortSignal, version?: string): Promise<Extract<PluginAnswer, { type: 'value' }>> {
    this.#largestMax = Math.max(this.#largestMax, maxBytes);
    this.#reader.limit = Math.max(this.#reader.limit, lineLimit(maxBytes));
    return this.#call('get', maxBytes, signal, `getting ${path}`, (id) => getLine(id, path, maxBytes, version)) as Promise<Extract<PluginAnswer, { type: 'value' }>>;
  }

  list(prefix: string, signal: AbortSignal): Promise<Extract<PluginAnswer, { type: 'names' }>> {
    this.#reader.limit = Math.max(this.#reader.limit, LIST_LINE_BYTES);
    return this.#call('list', 0, signal, `listing ${prefix || 'all names'}`, (id) => listLine(id, prefix)) as Promise<Extract<PluginAnswer, { type: 'names' }>>;
  }

  /** Ends the plugin now; calls in flight fail with `error`. */
  kill(error: ProviderError): void {
    this.#end(error);
  }

  /** Closes its stdin (a plugin exits at end of input), then kills what is left of it. */
  async stop(): Promise<void> {
    try {
      await this.#child.stdin.end();
    } catch {}
    await Promise.race([this.#child.exited, Bun.sleep(STOP_GRACE_MS)]);
    this.#end(new ProviderError('unavailable', 'the plugin was stopped'));
  }

  #call(type: Pending['type'], maxBytes: number, signal: AbortSignal, what: string, line: (id: number) => string): Promise<PluginAnswer> {
    if (this.#ended) return Promise.reject(this.#ended);
    if (signal.aborted) return Promise.reject(abortError(signal, `plugin ${this.#o.name}: ${what}`));
    const id = this.#nextId++;
    return new Promise<PluginAnswer>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        reject(abortError(signal, `plugin ${this.#o.name}: ${what}`));
        // A plugin answers in turn: one that did not answer in time holds up every later call.
        this.#end(new ProviderError('unavailable', `plugin ${this.path} was restarted because a call to it did not finish in time`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = () => signal.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        type,
        maxBytes,
        resolve: (a) => {
          done();
          resolve(a);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      this.#write(line(id));
    });
  }

  #write(line: string): void {
    try {
      void this.#child.stdin.write(line);
      void Promise.resolve(this.#child.stdin.flush()).catch(() => {});
    } catch {
      // The plugin is gone: its exit fails the call.
    }
  }

  #greet(signal: AbortSignal): Promise<void> {
    // It may have exited already, while its descriptor was being closed.
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        reject(abortError(signal, `starting plugin ${this.path}`));
        this.#end(new ProviderError('timeout', `plugin ${this.path} did not become ready in time`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#handshake = {
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.#write(helloLine(this.#o.name, this.#o.settings));
    });
  }

  #onHandshake(bytes: Uint8Array): void {
    const h = this.#handshake!;
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      return this.#fault('its first line is not JSON');
    }
    const r = v.safeParse(handshakeSchema, parsed, SAFE_MESSAGES);
    if (!r.success) return this.#fault(`its first line is not a ready or an error: ${r.issues[0].message}`);
    this.#handshake = undefined;
    if (r.output.type === 'ready') {
      this.capabilities = { list: r.output.capabilities.list, versions: r.output.capabilities.versions };
      h.resolve();
      return;
    }
    const error = new ProviderError(r.output.kind, `plugin ${this.#o.location.plugin} could not start: ${printable(r.output.message, 500)}`);
    h.reject(error);
    this.#end(error);
  }

  #onAnswer(bytes: Uint8Array): void {
    const extracted = extractValue(bytes, this.#largestMax);
    if (extracted.kind === 'invalid') return this.#fault(extracted.why);
    if (extracted.kind === 'too_large') {
      const id = idFromHead(bytes);
      if (id !== undefined && this.#pending.get(id)?.type !== 'get') return this.#fault(`it answered id ${id} with a value`);
      return this.#tooLarge(id, `the value is ${extracted.size} bytes`);
    }
    const value = extracted.kind === 'value' ? extracted.value : undefined;
    let answer: Answer;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(extracted.kind === 'value' ? extracted.rest : bytes);
      const r = v.safeParse(answerSchema, JSON.parse(text), SAFE_MESSAGES);
      if (!r.success) {
        value?.fill(0);
        return this.#fault(`an answer does not follow the protocol: ${r.issues[0].message}`);
      }
      answer = r.output;
    } catch {
      value?.fill(0);
      return this.#fault('an answer is not JSON');
    }
    const p = this.#pending.get(answer.id);
    if (!p) {
      value?.fill(0);
      return this.#fault(`it answered id ${answer.id}, which DSO did not ask or no longer waits for`);
    }
    if (answer.type === 'error') {
      this.#pending.delete(answer.id);
      // The plugin's own words: its author promises they hold no value (docs/providers/plugin.md).
      p.reject(new ProviderError(answer.kind, printable(answer.message, 500)));
      return;
    }
    if ((answer.type === 'value') !== (p.type === 'get') || (answer.type === 'value' && !value)) {
      value?.fill(0);
      return this.#fault(`it answered a ${p.type} with ${answer.type === 'value' ? 'a value' : 'names'}`);
    }
    this.#pending.delete(answer.id);
    if (answer.type === 'names') return p.resolve({ type: 'names', names: answer.names });
    if (value!.length > p.maxBytes) {
      value!.fill(0);
      return p.reject(new ProviderError('too_large', `the value is ${value!.length} bytes, over the ${p.maxBytes}-byte limit`));
    }
    p.resolve({ type: 'value', value: value!, ...(answer.version === undefined ? {} : { version: answer.version }) });
  }

  #onOversized(head: Uint8Array): void {
    if (this.#handshake) return this.#fault(`its first line is longer than ${SMALL_LINE_BYTES} bytes`);
    this.#tooLarge(idFromHead(head), `its answer is longer than ${this.#reader.limit} bytes`);
  }

  /** An answer over the limit: that call fails; the plugin, which did nothing wrong, keeps running. */
  #tooLarge(id: number | undefined, what: string): void {
    const p = id === undefined ? undefined : this.#pending.get(id);
    if (!p) return this.#fault(`${what}, and it does not say for which call`);
    this.#pending.delete(id!);
    p.reject(new ProviderError('too_large', p.type === 'get' ? `${what}, over the ${p.maxBytes}-byte limit` : `${what}: too many names`));
  }

  #fault(why: string): void {
    const error = new ProviderError('invalid_response', `plugin ${this.path} broke the protocol (${why}); it was stopped and will be started again on the next call`);
    this.#o.log('warn', error.message);
    this.#end(error);
  }

  /** Fails everything waiting with `error` and kills the plugin with all it started. Once. */
  #end(error: ProviderError): void {
    if (this.#ended) return;
    this.#ended = error;
    this.#handshake?.reject(error);
    this.#handshake = undefined;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#killGroup();
    process.off('exit', this.#killOnExit);
  }

  #killGroup(): void {
    // The plugin leads its own process group (see spawn): this ends the programs it started too.
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {}
    try {
      this.#child.kill('SIGKILL');
    } catch {}
  }

  async #readStdout(): Promise<void> {
    try {
      for await (const chunk of this.#child.stdout) this.#reader.push(chunk);
    } catch {
      // The pipe broke: the exit handler reports it.
    } finally {
      this.#reader.wipe();
    }
  }

  async #readStderr(): Promise<void> {
    const text = new TextDecoder();
    let rest = '';
    const emit = (line: string) => {
      if (line.trim()) this.#o.log('info', `plugin ${this.#o.location.plugin}: ${printable(line, MAX_LOG_LINE)}`);
    };
    try {
      for await (const chunk of this.#child.stderr) {
        rest += text.decode(chunk, { stream: true });
        const lines = rest.split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) emit(line);
        // A line without an end is cut rather than held.
        if (rest.length > MAX_LOG_LINE) {
          emit(rest);
          rest = '';
        }
      }
    } catch {}
    emit(rest);
  }
}

/**
 * Starts the verified file through its open descriptor, passed as the child's fd 3: on Linux,
 * executing /proc/self/fd/3 runs exactly the bytes that were hashed, whatever has happened to the
 * path since (an interpreter named by `#!` opens the same descriptor again). Where /proc is
 * missing, the verified real path is executed, which leaves the short window between the hash
 * and the exec that the ownership checks exist to close. The environment is exactly `env`: no
 * PATH, no HOME unless the entry declares them. The plugin leads a new session and process
 * group so that killing it ends whatever it started. Started by root (a provider Worker of a root
 * DSO), it runs as `user`, which Bun sets with no supplementary groups and no capabilities; a
 * provider process has already become that user itself, and the plugin inherits it.
 */
function spawn(fd: number, realPath: string, dir: string, env: Readonly<Record<string, string>>, user: PluginProcessOptions['user']): Bun.Subprocess<'pipe', 'pipe', 'pipe'> {
  const exec = existsSync('/proc/self/fd') ? '/proc/self/fd/3' : realPath;
  return Bun.spawn([exec], {
    env: { ...env },
    cwd: dir,
    stdio: ['pipe', 'pipe', 'pipe', fd],
    detached: true,
    ...(user !== undefined && process.geteuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {}),
  }) as unknown as Bun.Subprocess<'pipe', 'pipe', 'pipe'>;
}
