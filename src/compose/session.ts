// One Compose invocation through DSO: load the model, plan the secrets, check the engine, open
// the vault, deliver files into RAM, render the model and run Compose. Every check that can fail
// runs before anything is created, and what DSO created is undone if a later step fails.
import { realpathSync } from 'node:fs';
import type { Cli } from '../cli/context.ts';
import { info, warn } from '../cli/output.ts';
import { openVault } from '../cli/vault-session.ts';
import { DsoError } from '../errors.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';
import { forwardedGlobals, type ComposeGlobals } from './args.ts';
import { findCompose, loadProject, runWithModel, type LoadedProject } from './compose-cli.ts';
import { describeNearMisses, findNearMisses } from './near-miss.ts';
import { planSecrets, type SecretPlan } from './plan.ts';
import { renderModel } from './rewrite.ts';
import { tracer } from '../observe/trace.ts';
import type { ProviderSet, Wanted } from '../providers/resolver.ts';
import { secretIdFromCanonical } from './references.ts';

/** Compose commands that create containers, and so need secret values. */
const CREATING = new Set(['up', 'create', 'run']);

export interface SessionOptions {
  globals: ComposeGlobals;
  /** The Compose command and its arguments, e.g. ['up', '-d']. */
  command: string[];
  passphraseFile?: string;
  /** --mode, when given. */
  mode?: string;
}

export async function runCompose(cli: Cli, opts: SessionOptions): Promise<number> {
  const trace = tracer(cli.env, (s) => cli.stderr.write(s));
  const tool = findCompose(cli.env);
  trace.phase('find compose');
  const project = loadProject(tool, opts.globals, cli.cwd, cli.env);
  trace.phase('compose config');
  const globals = forwardedGlobals(opts.globals, project.name, project.directory);
  const verb = opts.command[0] ?? '';
  checkNearMisses(cli, project, { strict: opts.globals.strict === true, creating: CREATING.has(verb) });

  if (!CREATING.has(verb)) {
    const plan = planSecrets(project.model, project.xdso, project.name);
    const model = renderModel(project.model, plan);
    const code = await runWithModel(tool, globals, opts.command, model, cli.cwd, cli.env);
    if (verb === 'down' && code === 0) await removeSecretStorage(cli, project.name);
    return code;
  }
  return createWithSecrets(cli, opts, tool, project, globals, trace);
}

async function createWithSecrets(
  cli: Cli,
  opts: SessionOptions,
  tool: ReturnType<typeof findCompose>,
  project: LoadedProject,
  globals: string[],
  trace: ReturnType<typeof tracer>,
): Promise<number> {
  let plan = planSecrets(project.model, project.xdso, project.name);
  const names = [...new Set(plan.services.flatMap((s) => [...s.env.map((e) => e.name), ...s.files.map((f) => f.name)]))].sort();
  const hasFiles = plan.services.some((s) => s.files.length > 0);

  // The engine is checked before the passphrase is asked, so nobody types it for nothing.
  const engine = names.length > 0 ? await (await import('../docker/engine.ts')).connectEngine(cli.env) : undefined;
  if (engine) {
    await engine.ping();
    if (hasFiles) plan = await withImageOwners(plan, project, engine);
    trace.phase('engine ping, image users');
  }
  // Services with secret files start through the wrapper that waits for them (after a reboot):
  // what each would run is known now, or nothing starts.
  const wrap = engine && hasFiles ? await wrapping(cli, engine, plan, project, tool, globals) : undefined;
  if (wrap) trace.phase('entrypoints');

  const wanted = wantedSecrets(plan);
  const local = [...wanted.values()].filter((w) => w.id.provider === undefined);
  const remote = [...wanted.values()].filter((w) => w.id.provider !== undefined);
  // dso.yaml is read and checked before the passphrase is asked, like the engine.
  const mode = remote.length > 0 ? await modeFor(cli, opts.mode) : undefined;
  const providers = mode?.mode === 'local' ? await openProviders(cli, remote) : undefined;

  const values = new Map<string, SecretBytes>();
  const markers = new Map<string, string>();
  let delivery: Awaited<ReturnType<typeof import('../docker/secret-volumes.ts').deliverFiles>>;
  let model: Uint8Array | undefined;
  try {
    if (mode?.mode === 'cloud') {
      for (const [id, got] of await resolveThroughAgent(cli, remote)) {
        values.set(id, got.value);
        if (got.fingerprint) markers.set(id, got.fingerprint);
      }
      trace.phase('agent resolved');
    }
    if (providers) {
      const { resolveProviderSecrets } = await import('../providers/resolver.ts');
      for (const [id, value] of await resolveProviderSecrets(providers, remote, { consequence: 'nothing was started' })) values.set(id, value);
      trace.phase('providers resolved');
    }
    if (local.length > 0) {
      const vault = await openVault(cli, opts.passphraseFile);
      try {
        const missing = missingSecrets(plan, (n) => wanted.get(n)?.id.provider !== undefined || vault.has(n));
        if (missing.length > 0) {
          throw new DsoError('SECRET_NOT_FOUND', `${missing.length === 1 ? 'a secret is' : `${missing.length} secrets are`} not in the local vault; nothing was started:\n${missing.map((m) => `    ${m}`).join('\n')}`, {
            hint: `store ${missing.length === 1 ? 'it' : 'them'} with \`${cli.prog} secret set NAME\`, or fix the name in the compose file`,
          });
        }
        for (const w of local) values.set(w.id.id, vault.get(w.id.id));
      } finally {
        vault.close();
      }
      trace.phase('vault open and read');
    }
    if (names.length > 0) info(cli, resolvedSummary(project.name, local.length, remote));
    warnEnvironmentSecrets(cli, plan);
    const value = (n: string) => values.get(n)!.expose();
    // Render before delivering files: a value that cannot be an environment variable fails here,
    // while nothing has been created yet.
    const holderHint = hasFiles ? (await import('../docker/secret-volumes.ts')).holderName(project.name, plan.services.flatMap((s) => s.mounts.map((m) => m.volume))) : undefined;
    const { vaultPath } = await import('../cli/context.ts');
    const origin = {
      ...(local.length > 0 ? { vaultId: (await import('../vault/vault-id.ts')).vaultIdOf(vaultPath(cli.env)) } : {}),
      ...(mode?.mode === 'cloud' ? { configSource: 'agent' } : providers ? { configSource: realpathSync(providers.config.path) } : {}),
    };
    const volumeNames = engine && hasFiles ? await (await import('../docker/secret-volumes.ts')).mountedGenerations(engine, plan) : undefined;
    model = renderModel(project.model, plan, { values: value, holder: holderHint, markers, ...origin, ...(wrap ? { wrap } : {}), ...(volumeNames?.size ? { volumeNames } : {}) });
    if (engine && hasFiles) {
      const { deliverFiles } = await import('../docker/secret-volumes.ts');
      delivery = await deliverFiles(engine, plan, value, (m) => info(cli, m));
      trace.phase('files delivered to RAM');
    }
  } catch (e) {
    wipeAll(model, ...values.values());
    throw e;
  } finally {
    await providers?.close();
  }
  wipeAll(...values.values());

  let code: number;
  try {
    code = await runWithModel(tool, globals, opts.command, model, cli.cwd, cli.env);
    trace.phase(`compose ${opts.command[0]}`);
  } finally {
    model.fill(0);
  }
  if (code === 0 && engine && delivery) {
    const { removeProjectSecrets } = await import('../docker/secret-volumes.ts');
    const keep = plan.services.flatMap((s) => s.mounts.map((m) => m.volume));
    await removeProjectSecrets(engine, project.name, { keepHolder: delivery.holder, keepVolumes: keep }).catch(() => []);
  }
  return code;
}

/**
 * What each service with secret files runs: its compose entrypoint and command, or the image's.
 * Images that are not on the engine yet are pulled (or built) first, as `up` would do anyway,
 * because their ENTRYPOINT and CMD are needed before the container is defined.
 */
async function wrapping(cli: Cli, engine: import('../docker/engine.ts').Engine, plan: SecretPlan, project: LoadedProject, tool: ReturnType<typeof findCompose>, globals: string[]): Promise<NonNullable<import('./rewrite.ts').RewriteOptions['wrap']>> {
  const services = (project.model.services ?? {}) as Record<string, Record<string, unknown>>;
  const list = (x: unknown): string[] => (Array.isArray(x) ? x.map(String) : typeof x === 'string' ? [x] : []);
  // Image strings are raw; the model is interpolated by Compose once more, so `$` is doubled.
  const raw = (xs: string[]) => xs.map((x) => x.replaceAll('$', '$$$$'));
  const imageOf = (service: string) => (typeof services[service]?.image === 'string' ? (services[service]!.image as string) : `${project.name}-${service}`);
  const needed = plan.services.filter((sp) => sp.mounts.length > 0);
  const commands = new Map<string, { entrypoint: string[]; command: string[] }>();
  const missing: string[] = [];
  const resolve = async (final: boolean) => {
    missing.length = 0;
    // Many services share an image: inspect each image once, not once per service.
    const configs = new Map<string, ReturnType<typeof engine.imageConfig>>();
    for (const sp of needed) {
      const def = services[sp.service] ?? {};
      if (def.entrypoint !== undefined && def.entrypoint !== null) {
        commands.set(sp.service, { entrypoint: list(def.entrypoint), command: list(def.command) });
        continue;
      }
      const ref = imageOf(sp.service);
      if (!configs.has(ref)) configs.set(ref, engine.imageConfig(ref));
      const image = await configs.get(ref)!;
      if (!image) {
        if (final) throw new DsoError('COMPOSE_FAILED', `the image ${imageOf(sp.service)} of service "${sp.service}" is still not on the engine after pulling or building it; nothing was started`, { hint: 'check the image name, and that `docker compose pull` or `build` works for it' });
        missing.push(sp.service);
        continue;
      }
      const command = def.command !== undefined && def.command !== null ? list(def.command) : raw(image.cmd);
      const entrypoint = raw(image.entrypoint);
      if (entrypoint.length === 0 && command.length === 0) throw new DsoError('COMPOSE_FILE', `service "${sp.service}" has no command to run (neither the compose file nor its image gives one)`, { hint: 'give it a command: in the compose file' });
      commands.set(sp.service, { entrypoint, command });
    }
  };
  await resolve(false);
  if (missing.length > 0) {
    const bare = renderModel(project.model, plan);
    try {
      const pull = missing.filter((s) => typeof services[s]?.image === 'string' && !services[s]?.build);
      const build = missing.filter((s) => !pull.includes(s));
      if (pull.length > 0) {
        info(cli, `Pulling ${pull.join(', ')} first: DSO needs their images' entrypoints to start them once their secrets are in place`);
        if ((await runWithModel(tool, globals, ['pull', ...pull], bare, cli.cwd, cli.env)) !== 0) throw new DsoError('COMPOSE_FAILED', `pulling ${pull.join(', ')} failed; nothing was started`, { hint: 'see Compose\'s message above' });
      }
      if (build.length > 0) {
        info(cli, `Building ${build.join(', ')} first: DSO needs their images' entrypoints to start them once their secrets are in place`);
        if ((await runWithModel(tool, globals, ['build', ...build], bare, cli.cwd, cli.env)) !== 0) throw new DsoError('COMPOSE_FAILED', `building ${build.join(', ')} failed; nothing was started`, { hint: 'see Compose\'s message above' });
      }
    } finally {
      bare.fill(0);
    }
    await resolve(true);
  }
  const { ensureBinVolume } = await import('../docker/secret-volumes.ts');
  return { binVolume: await ensureBinVolume(engine, (m) => info(cli, m)), commands };
}

/** Services without a `user:` get their secret files owned by the image's numeric USER, if it has one. */
async function withImageOwners(plan: SecretPlan, project: LoadedProject, engine: import('../docker/engine.ts').Engine): Promise<SecretPlan> {
  const services = (project.model.services ?? {}) as Record<string, Record<string, unknown>>;
  const users = new Map<string, string | undefined>();
  const byImage = new Map<string, Promise<string | undefined>>(); // each image inspected once
  for (const sp of plan.services) {
    const def = services[sp.service];
    if (sp.files.length === 0 || !def || def.user !== undefined || typeof def.image !== 'string') continue;
    if (!byImage.has(def.image)) byImage.set(def.image, engine.imageUser(def.image).catch(() => undefined));
    users.set(sp.service, await byImage.get(def.image)!);
  }
  if (users.size === 0) return plan;
  return planSecrets(project.model, project.xdso, project.name, { imageUser: (s) => users.get(s) });
}

/** Every secret the plan needs, by canonical id, with where each is used. */
function wantedSecrets(plan: SecretPlan): Map<string, Wanted> {
  const out = new Map<string, Wanted>();
  const use = (name: string, where: string) => {
    const w = out.get(name) ?? { id: secretIdFromCanonical(name), uses: [] };
    w.uses.push(where);
    out.set(name, w);
  };
  for (const s of plan.services) {
    for (const e of s.env) use(e.name, `service "${s.service}", variable ${e.variable}`);
    for (const f of s.files) use(f.name, `service "${s.service}", ${f.variable ? `variable ${f.variable}` : `secret ${f.secretKey}`}`);
  }
  return out;
}

async function modeFor(cli: Cli, flag: string | undefined): Promise<import('../config/mode.ts').ModeDecision> {
  const { detectMode } = await import('../config/mode.ts');
  const { join } = await import('node:path');
  const decision = detectMode(cli.env, { localConfig: join(cli.cwd, 'dso.yaml'), ...(flag === undefined ? {} : { flag }) });
  for (const w of decision.warnings) warn(cli, w);
  return decision;
}

/** Cloud Mode: the agent resolves provider references; failures are listed as in Local Mode. */
async function resolveThroughAgent(cli: Cli, remote: Wanted[]): Promise<Map<string, { value: SecretBytes; fingerprint?: string }>> {
  const { agentResolve } = await import('../agent/client.ts');
  const { agentSocketPath } = await import('../config/find.ts');
  const { failureError } = await import('../providers/resolver.ts');
  const socket = await agentSocketPath(cli.env);
  const got = await agentResolve(socket, remote.map((w) => w.id.id));
  const values = new Map<string, { value: SecretBytes; fingerprint?: string }>();
  for (const [id, v] of got.values) {
    values.set(id, { value: v.value, ...(v.fingerprint ? { fingerprint: v.fingerprint } : {}) });
    if (v.stale) warn(cli, `${id}: the agent served a cached value; its provider is unavailable`);
  }
  const byId = new Map(remote.map((w) => [w.id.id, w]));
  const missing = remote.filter((w) => !values.has(w.id.id) && !got.failures.some((f) => f.id === w.id.id));
  const failures = [
    ...got.failures.filter((f) => byId.has(f.id)).map((f) => ({ wanted: byId.get(f.id)!, provider: byId.get(f.id)!.id.provider!, kind: f.kind, message: f.message })),
    ...missing.map((w) => ({ wanted: w, provider: w.id.provider!, kind: 'internal', message: 'the agent did not answer for it' })),
  ];
  if (failures.length > 0) {
    wipeAll(...[...values.values()].map((v) => v.value));
    throw failureError(failures, 'nothing was started');
  }
  return values;
}

/** The providers of dso.yaml, checked; an error names the references that needed them. */
async function openProviders(cli: Cli, remote: Wanted[]): Promise<ProviderSet> {
  const { findConfigPath, configCandidates } = await import('../config/find.ts');
  const path = findConfigPath(cli.env, cli.cwd);
  const used = remote.map((w) => `    ${w.id.id} (${w.uses.join('; ')})`).join('\n');
  if (path === undefined) {
    throw new DsoError('CONFIG_NOT_FOUND', `the compose file uses provider secrets, and no dso.yaml configures providers (looked for ${configCandidates(cli.env, cli.cwd).join(' and ')}); nothing was started:\n${used}`, {
      hint: 'describe the providers in dso.yaml (see docs/providers.md), or set DSO_CONFIG to its path',
    });
  }
  const { loadConfig } = await import('../config/load.ts');
  const { ProviderSet } = await import('../providers/resolver.ts');
  const config = await loadConfig(path);
  const verbose = cli.env.DSO_TRACE === '1';
  return new ProviderSet(config, {
    env: cli.env,
    log: (level, message) => {
      if (level === 'warn') warn(cli, message);
      else if (verbose) cli.stderr.write(`[dso] ${message}\n`);
    },
  });
}

function resolvedSummary(project: string, localCount: number, remote: Wanted[]): string {
  const total = localCount + remote.length;
  const from = [
    ...(localCount > 0 ? [`${localCount} from the local vault`] : []),
    ...[...new Set(remote.map((w) => w.id.provider!))].sort().map((p) => `${remote.filter((w) => w.id.provider === p).length} from ${p}`),
  ];
  return `Resolved ${total} secret${total === 1 ? '' : 's'} for project ${project} (${from.join(', ')})`;
}

function missingSecrets(plan: SecretPlan, has: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const s of plan.services) {
    for (const e of s.env) if (!has(e.name)) out.push(`${e.name} (service "${s.service}", variable ${e.variable})`);
    for (const f of s.files) {
      if (has(f.name)) continue;
      out.push(`${f.name} (service "${s.service}", ${f.variable ? `variable ${f.variable}` : `secret ${f.secretKey}`})`);
    }
  }
  return out;
}

/**
 * Values that look like mistyped references would reach containers as literal strings: a
 * warning when containers are created, an error with --strict (for any command, so `compose
 * --strict config` can check a file in CI).
 */
function checkNearMisses(cli: Cli, project: LoadedProject, o: { strict: boolean; creating: boolean }): void {
  if (!o.strict && !o.creating) return;
  const misses = findNearMisses(project.model, project.xdsoMistyped);
  if (misses.length === 0) return;
  const one = misses.length === 1;
  const what = one ? 'a value looks like a mistyped secret reference' : `${misses.length} values look like mistyped secret references`;
  if (o.strict) {
    throw new DsoError('INVALID_REFERENCE', `${what}; --strict refuses them, so nothing was run:\n${describeNearMisses(misses)}`, {
      hint: 'correct the reference (dso://NAME or dsofile://NAME, or x-dso: NAME), or leave out --strict if the value is meant literally',
    });
  }
  warn(cli, `${what} and ${one ? 'reaches the container' : 'reach the containers'} as written:\n${describeNearMisses(misses)}\n  Correct ${one ? 'it' : 'them'} (dso://NAME, dsofile://NAME, x-dso: NAME); --strict makes this an error.`);
}

function warnEnvironmentSecrets(cli: Cli, plan: SecretPlan): void {
  const uses = plan.services.flatMap((s) => s.env.map((e) => `${s.service}.${e.variable} (${e.name})`));
  if (uses.length === 0) return;
  warn(
    cli,
    `dso:// puts secret values into container environments: ${uses.join(', ')}.\n` +
      '  The engine stores them in the container config on disk and `docker inspect` shows them.\n' +
      '  Use dsofile:// to keep a secret in RAM only (the variable then holds a file path).',
  );
}

async function removeSecretStorage(cli: Cli, project: string): Promise<void> {
  const { connectEngine } = await import('../docker/engine.ts');
  const { removeProjectSecrets } = await import('../docker/secret-volumes.ts');
  const engine = await connectEngine(cli.env);
  const left = await removeProjectSecrets(engine, project);
  if (left.length > 0) {
    warn(cli, `secret volumes still mounted by containers that \`compose down\` did not remove were kept: ${left.join(', ')}; remove those containers, then run \`${cli.prog} down\` again`);
  }
}
