// The checks behind `dso doctor`: each looks at one thing a working DSO needs and says what it
// found and, when something is wrong, how to fix it. They only look: the one exception, the
// RAM-backed storage probe of `--level full`, creates a throwaway volume and removes it. No check
// reads or prints a secret value (the vault is checked without its passphrase).
import { existsSync, lstatSync, readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { configCandidates, findConfigPath, SYSTEM_CONFIG_PATH } from '../config/find.ts';
import type { DsoConfig } from '../config/load.ts';
import type { ModeDecision } from '../config/mode.ts';
import type { Engine } from '../docker/engine.ts';
import { DsoError } from '../errors.ts';
import type { ProviderCheck } from '../providers/check.ts';
import { parseVaultFile } from '../vault/format.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';
export type Level = 'basic' | 'full';

export interface CheckResult {
  /** Stable identifier, for scripts: `docker.engine`, `provider.vault`... */
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do, when the status is warn or fail. */
  fix?: string;
}

export interface DoctorEnv {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  level: Level;
  modeFlag?: string;
  uid: number;
  now(): number;
  /** A line of progress for slow checks (shown on a terminal only). */
  progress(message: string): void;
}

/** Minimum Docker Engine API: 1.41 is Docker 20.10, the oldest engine DSO supports. */
const MIN_API = [1, 41] as const;
/** Free space below which a write (vault, state, images) is likely to fail. */
const DISK_FAIL_BYTES = 64 * 1024 * 1024;
const DISK_WARN_BYTES = 512 * 1024 * 1024;
/** Clock skew: signed requests (AWS SigV4, Huawei AK/SK) are refused beyond 5 minutes; tokens sooner. */
const SKEW_WARN_MS = 5_000;
const SKEW_FAIL_MS = 60_000;

const pass = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'pass', detail });
const skip = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'skip', detail });
const warn = (id: string, title: string, detail: string, fix: string): CheckResult => ({ id, title, status: 'warn', detail, fix });
const fail = (id: string, title: string, detail: string, fix: string): CheckResult => ({ id, title, status: 'fail', detail, fix });

function failFromError(id: string, title: string, e: unknown, fallbackFix: string): CheckResult {
  if (e instanceof DsoError) return fail(id, title, e.message, e.hint ?? fallbackFix);
  return fail(id, title, e instanceof Error ? e.message : String(e), fallbackFix);
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** Runs every check of the level, in an order where later checks reuse what earlier ones found. */
export async function runChecks(d: DoctorEnv): Promise<{ mode?: ModeDecision; checks: CheckResult[] }> {
  const checks: CheckResult[] = [];
  const { detectMode } = await import('../config/mode.ts');
  let mode: ModeDecision | undefined;
  try {
    mode = detectMode(d.env, { ...(d.modeFlag === undefined ? {} : { flag: d.modeFlag }), localConfig: join(d.cwd, 'dso.yaml'), vaultPath: join(dsoHome(d.env), 'vault.enc') });
    const detail = `${mode.mode} mode (${mode.reason})`;
    if (mode.guidance) checks.push(warn('mode', 'Mode', `${detail}: ${mode.guidance.split(':')[0]}`, mode.guidance.slice(mode.guidance.indexOf(':') + 2)));
    else checks.push(mode.warnings.length ? warn('mode', 'Mode', `${detail}; ${mode.warnings.join('; ')}`, 'remove the file DSO ignores, or choose with --mode / DSO_MODE') : pass('mode', 'Mode', detail));
  } catch (e) {
    checks.push(failFromError('mode', 'Mode', e, 'set DSO_MODE to local or cloud'));
  }

  const engine = await engineCheck(d, checks);
  checks.push(await composeCheck(d));
  const config = await configCheck(d, mode, checks);
  if (mode?.mode !== 'cloud') checks.push(vaultCheck(d, mode));
  checks.push(...homePermissions(d));
  checks.push(...etcPermissions(mode));
  if (mode?.mode === 'cloud') checks.push(...(await agentChecks(d)));
  else checks.push(...(await localProviderChecks(d, config)));
  checks.push(await ramCheck(d, engine));
  let dataRoot: string | undefined;
  if (engine) {
    const clock = await clockCheck(d, engine);
    dataRoot = clock.dataRoot;
    checks.push(clock.result);
  }
  checks.push(diskCheck(d, engine, dataRoot));
  return { ...(mode ? { mode } : {}), checks };
}

async function engineCheck(d: DoctorEnv, checks: CheckResult[]): Promise<Engine | undefined> {
  const title = 'Docker engine';
  try {
    const { connectEngine } = await import('../docker/engine.ts');
    const engine = await connectEngine(d.env);
    const v = await engine.version();
    const [major, minor] = v.apiVersion.split('.').map(Number) as [number, number];
    const detail = `Docker ${v.version} (API ${v.apiVersion}, ${v.os}/${v.arch}) at ${engine.host}`;
    if (major < MIN_API[0] || (major === MIN_API[0] && minor < MIN_API[1])) {
      checks.push(fail('docker.engine', title, `${detail}: too old`, 'DSO needs Docker Engine 20.10 (API 1.41) or newer: upgrade Docker'));
    } else if (v.os !== 'linux' || (v.arch !== 'amd64' && v.arch !== 'arm64')) {
      checks.push(warn('docker.engine', title, `${detail}: dsofile:// secrets need a linux/amd64 or linux/arm64 engine`, 'use dso:// on this engine, or run the stack on a Linux engine'));
    } else {
      checks.push(pass('docker.engine', title, detail));
    }
    return engine;
  } catch (e) {
    checks.push(failFromError('docker.engine', title, e, 'start Docker, or point DOCKER_HOST at a running engine; `docker version` must work'));
    return undefined;
  }
}

async function composeCheck(d: DoctorEnv): Promise<CheckResult> {
  const title = 'Docker Compose';
  try {
    const { findCompose, composeEnv } = await import('../compose/compose-cli.ts');
    const tool = findCompose(d.env);
    let version = tool.version;
    if (version === 'plugin') {
      // Found on disk without running it (the fast path of `up`); here, ask it.
      const r = Bun.spawnSync([...tool.argv, 'version', '--short'], { env: composeEnv(d.env), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
      if (r.exitCode !== 0) return fail('docker.compose', title, `\`${tool.argv.join(' ')} version\` failed: ${r.stderr.toString().trim().slice(0, 200)}`, 'reinstall the Compose plugin; `docker compose version` must work');
      version = r.stdout.toString().trim().replace(/^v/, '');
    }
    const detail = `Compose ${version} (\`${tool.argv.join(' ')}\`)`;
    return tool.major === 1 ? warn('docker.compose', title, `${detail}: Compose v1 is end-of-life`, 'install Compose v2 (the `docker compose` plugin); DSO uses it first') : pass('docker.compose', title, detail);
  } catch (e) {
    return failFromError('docker.compose', title, e, 'install Docker Compose v2');
  }
}

async function configCheck(d: DoctorEnv, mode: ModeDecision | undefined, checks: CheckResult[]): Promise<DsoConfig | undefined> {
  const title = 'Configuration';
  // In Cloud Mode the agent's file is the one that matters.
  const path = mode?.mode === 'cloud' && !d.env.DSO_CONFIG ? SYSTEM_CONFIG_PATH : findConfigPath(d.env, d.cwd);
  if (path === undefined || (!existsSync(path) && !d.env.DSO_CONFIG)) {
    checks.push(skip('config', title, `no dso.yaml (looked for ${configCandidates(d.env, d.cwd).join(' and ')}): only local vault references are available`));
    return undefined;
  }
  const { loadConfig } = await import('../config/load.ts');
  try {
    const config = await loadConfig(path);
    const names = [...config.providers.keys()];
    checks.push(pass('config', title, `${path} is valid; providers: ${names.length ? names.join(', ') : 'none'}`));
    return config;
  } catch (e) {
    if (e instanceof DsoError && e.code === 'CONFIG_INVALID' && /cannot read/.test(e.message) && mode?.mode === 'cloud') {
      checks.push(warn('config', title, `${path} is not readable by this user (the agent reads it as its own user)`, `run \`sudo docker dso doctor\` to check it, or \`sudo docker dso config validate\``));
      return undefined;
    }
    checks.push(failFromError('config', title, e, `run \`docker dso config validate --file ${path}\` and fix what it lists`));
    return undefined;
  }
}

function vaultCheck(d: DoctorEnv, mode: ModeDecision | undefined): CheckResult {
  const title = 'Local vault';
  const home = dsoHome(d.env);
  const path = join(home, 'vault.enc');
  if (!existsSync(path)) {
    return mode?.mode === 'local' ? warn('vault', title, `not initialised (${path} does not exist)`, 'run `docker dso init` (or `docker dso bootstrap local`)') : skip('vault', title, `${path} does not exist`);
  }
  try {
    const file = new Uint8Array(readFileSync(path));
    // Header, version and length only: the contents need the passphrase, which doctor never asks for.
    parseVaultFile(file, path);
    return pass('vault', title, `${path} (${file.length} bytes, format readable)`);
  } catch (e) {
    return failFromError('vault', title, e, `restore ${path} from a backup`);
  }
}

function dsoHome(env: DoctorEnv['env']): string {
  return env.DSO_HOME || join(env.HOME || homedir(), '.dso');
}

function homePermissions(d: DoctorEnv): CheckResult[] {
  const id = 'permissions.home';
  const title = 'Permissions of the DSO home';
  const home = dsoHome(d.env);
  if (!existsSync(home)) return [skip(id, title, `${home} does not exist`)];
  const problems: string[] = [];
  const fixes: string[] = [];
  const st = statSync(home);
  if (st.uid !== d.uid) problems.push(`${home} belongs to uid ${st.uid}, not to you (uid ${d.uid})`);
  if (st.mode & 0o077) {
    problems.push(`${home} is mode ${octal(st.mode)}: others can see into it`);
    fixes.push(`chmod 700 ${home}`);
  }
  for (const name of readdirSync(home)) {
    const p = join(home, name);
    const s = lstatSync(p);
    if (s.isFile() && s.mode & 0o077) {
      problems.push(`${p} is mode ${octal(s.mode)}`);
      fixes.push(`chmod 600 ${p}`);
    }
  }
  if (problems.length === 0) return [pass(id, title, `${home} is mode ${octal(st.mode)}, yours, its files private`)];
  return [fail(id, title, problems.join('; '), fixes.length ? fixes.join(' && ') : `sudo chown -R ${d.uid} ${home}`)];
}

function etcPermissions(mode: ModeDecision | undefined): CheckResult[] {
  const id = 'permissions.etc';
  const title = 'Permissions of /etc/dso';
  const dir = dirname(SYSTEM_CONFIG_PATH);
  // Cloud Mode without /etc/dso was chosen explicitly, for an agent configured elsewhere.
  if (!existsSync(dir)) return [skip(id, title, `${dir} does not exist${mode?.mode === 'cloud' ? '' : ' (not needed in Local Mode)'}`)];
  const problems: string[] = [];
  const fixes: string[] = [];
  const st = statSync(dir);
  if (st.uid !== 0) problems.push(`${dir} belongs to uid ${st.uid}, not root`);
  if (st.mode & 0o022) {
    problems.push(`${dir} is mode ${octal(st.mode)}: others may change the agent's configuration`);
    fixes.push(`sudo chmod go-w ${dir}`);
  }
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    problems.push(`${dir} cannot be listed by this user`);
  }
  for (const name of entries) {
    const p = join(dir, name);
    const s = lstatSync(p);
    if (!s.isFile()) continue;
    if (s.uid !== 0) problems.push(`${p} belongs to uid ${s.uid}, not root`);
    if (s.mode & 0o022) {
      problems.push(`${p} is mode ${octal(s.mode)}: writable by others`);
      fixes.push(`sudo chmod go-w ${p}`);
    }
    // Files that hold credentials for the agent (agent.env, passphrase or token files).
    if (!name.endsWith('.yaml') && !name.endsWith('.yml') && s.mode & 0o077) {
      problems.push(`${p} is mode ${octal(s.mode)}: it may hold credentials, and others can read it`);
      fixes.push(`sudo chmod 600 ${p}`);
    }
  }
  if (problems.length === 0) return [pass(id, title, `${dir} and its files are root's and not writable by others`)];
  return [fail(id, title, problems.join('; '), fixes.length ? fixes.join(' && ') : `sudo chown -R root: ${dir}`)];
}

async function agentChecks(d: DoctorEnv): Promise<CheckResult[]> {
  const { agentSocketPath } = await import('../config/find.ts');
  const { agentCheckProviders, agentStatus } = await import('../agent/client.ts');
  const out: CheckResult[] = [];
  let socket: string;
  try {
    socket = await agentSocketPath(d.env);
  } catch (e) {
    return [failFromError('agent', 'Agent', e, 'fix /etc/dso/dso.yaml (`sudo docker dso config validate`)')];
  }
  const st = (() => {
    try {
      return statSync(socket);
    } catch {
      return undefined;
    }
  })();
  if (!st) {
    return [fail('agent', 'Agent', `no socket at ${socket}: the agent is not running`, 'start it: `sudo docker dso system enable` (or `sudo docker dso bootstrap agent` on a new host); then `docker dso system logs`')];
  }
  if (!st.isSocket()) out.push(fail('permissions.socket', 'Agent socket', `${socket} is not a socket`, `remove ${socket} and restart the agent (\`sudo docker dso system restart\`)`));
  else if (st.mode & 0o007) out.push(fail('permissions.socket', 'Agent socket', `${socket} is mode ${octal(st.mode)}: any local user can read secrets through it`, `set agent.socket.mode to "0660" in /etc/dso/dso.yaml and restart the agent`));
  else out.push(pass('permissions.socket', 'Agent socket', `${socket} is mode ${octal(st.mode)}, group ${st.gid}`));

  try {
    const s = (await agentStatus(socket)) as { version?: string; uptimeSeconds?: number; pid?: number; pendingRotations?: Array<{ container: string; status: string; step: string; reason?: string }> };
    out.push(pass('agent', 'Agent', `running at ${socket} (version ${s.version}, pid ${s.pid}, up ${s.uptimeSeconds} s)`));
    const pending = s.pendingRotations ?? [];
    const stuck = pending.filter((r) => r.status === 'stuck');
    if (stuck.length > 0) {
      out.push(fail('rotations', 'Rotations', stuck.map((r) => `${r.container}: stuck at ${r.step}: ${r.reason ?? 'unknown'}`).join('; '), 'look at the containers named (docker ps -a); once the name belongs to the right container again, restart the agent and it recovers the rotation'));
    } else {
      out.push(pass('rotations', 'Rotations', pending.length === 0 ? 'none under way' : `${pending.length} under way: ${pending.map((r) => `${r.container} at ${r.step}`).join(', ')}`));
    }
  } catch (e) {
    out.push(failFromError('agent', 'Agent', e, 'check `docker dso system status` and `docker dso system logs`'));
    return out;
  }
  d.progress('Asking the agent to log in to each provider...');
  try {
    out.push(...providerResults(await agentCheckProviders(socket)));
  } catch (e) {
    out.push(failFromError('providers', 'Providers', e, 'see `docker dso system logs`'));
  }
  return out;
}

async function localProviderChecks(d: DoctorEnv, config: DsoConfig | undefined): Promise<CheckResult[]> {
  if (!config || config.providers.size === 0) return [];
  if (d.level !== 'full') {
    return [...config.providers.values()].map((p) => skip(`provider.${p.name}`, `Provider ${p.name}`, `${p.kind}, ${p.isolation} isolation; its login is checked with --level full`));
  }
  d.progress(`Logging in to ${config.providers.size} provider(s)...`);
  const { ProviderSet } = await import('../providers/resolver.ts');
  const { checkProviders } = await import('../providers/check.ts');
  const set = new ProviderSet(config, { env: d.env });
  try {
    return providerResults(await checkProviders(set));
  } finally {
    await set.close();
  }
}

/** What to do about a provider that failed, by kind (docs/providers.md, Errors). */
const PROVIDER_FIX: Record<string, string> = {
  auth: 'check the credentials its dso.yaml entry names (the variables must be set where the provider runs) and that they have not expired',
  denied: 'grant these credentials read access at the provider',
  unavailable: 'check that the backend is reachable from this host (address, DNS, firewall, proxy)',
  timeout: 'check connectivity, or raise the entry\'s timeout',
  config: 'fix the provider\'s entry in dso.yaml (docs/providers.md)',
  crashed: 'rerun with DSO_TRACE=1 to see its log lines; report it if it persists',
};

/** A provider check as the CLI computed it, or as the agent reported it (kinds as plain text). */
type ReportedCheck = Omit<ProviderCheck, 'error'> & { error?: { kind: string; message: string } };

function providerResults(results: ReportedCheck[]): CheckResult[] {
  return results.map((r) => {
    const id = `provider.${r.name}`;
    const title = `Provider ${r.name}`;
    if (r.ok) return pass(id, title, `${r.kind}, ${r.isolation} isolation: started and authenticated in ${r.ms} ms`);
    return fail(id, title, `${r.kind}: ${r.error?.kind ?? 'error'}: ${r.error?.message ?? 'unknown'}`, PROVIDER_FIX[r.error?.kind ?? ''] ?? 'see docs/providers.md, Errors');
  });
}

async function ramCheck(d: DoctorEnv, engine: Engine | undefined): Promise<CheckResult> {
  const id = 'storage.ram';
  const title = 'RAM-backed secret storage';
  if (d.level !== 'full') return skip(id, title, 'checked with --level full (creates and removes a throwaway tmpfs volume)');
  if (!engine) return skip(id, title, 'needs the Docker engine');
  d.progress('Checking that secret volumes are held in RAM on the engine host...');
  try {
    const { probeRamBacked } = await import('../docker/secret-volumes.ts');
    await probeRamBacked(engine, d.progress);
    return pass(id, title, 'a tmpfs volume held by the DSO holder is RAM-backed on the engine host (statfs)');
  } catch (e) {
    return failFromError(id, title, e, 'use an engine with the local volume driver and tmpfs support');
  }
}

async function clockCheck(d: DoctorEnv, engine: Engine): Promise<{ result: CheckResult; dataRoot?: string }> {
  const id = 'clock';
  const title = 'Clock';
  try {
    const before = d.now();
    const info = await engine.info();
    const after = d.now();
    // The engine read its clock somewhere within the round trip: compare with the middle.
    const skew = info.systemTime.getTime() - (before + after) / 2;
    const detail = `this host and the Docker engine differ by ${Math.abs(Math.round(skew))} ms (round trip ${after - before} ms)`;
    const fix = 'synchronise both clocks with NTP (`timedatectl set-ntp true`); signed provider requests are refused when clocks drift';
    const result = Math.abs(skew) > SKEW_FAIL_MS ? fail(id, title, detail, fix) : Math.abs(skew) > SKEW_WARN_MS + (after - before) ? warn(id, title, detail, fix) : pass(id, title, detail);
    return { result, ...(info.dataRoot ? { dataRoot: info.dataRoot } : {}) };
  } catch (e) {
    return { result: failFromError(id, title, e, 'check the Docker engine') };
  }
}

function diskCheck(d: DoctorEnv, engine: Engine | undefined, dataRoot: string | undefined): CheckResult {
  const id = 'disk';
  const title = 'Disk space';
  const places: Array<[string, string]> = [[dsoHome(d.env), 'DSO home'], [dirname(SYSTEM_CONFIG_PATH), '/etc/dso']];
  // The engine's data root is only measurable here when the engine runs on this host.
  if (dataRoot && engine?.host.startsWith('unix://')) places.push([dataRoot, 'Docker data root']);
  const seen = new Set<number>();
  const lines: string[] = [];
  let worst: CheckStatus = 'pass';
  for (const [path, label] of places) {
    const existing = nearestExisting(path);
    if (!existing) continue;
    let fs: ReturnType<typeof statfsSync>;
    try {
      fs = statfsSync(existing);
    } catch {
      continue;
    }
    const free = Number(fs.bavail) * Number(fs.bsize);
    const key = Number(fs.blocks) * 31 + Number(fs.type);
    if (seen.has(key)) continue;
    seen.add(key);
    const pct = Number(fs.blocks) > 0 ? (Number(fs.bavail) / Number(fs.blocks)) * 100 : 100;
    lines.push(`${label} (${existing}): ${gib(free)} free (${pct.toFixed(0)}%)`);
    if (free < DISK_FAIL_BYTES) worst = 'fail';
    else if ((free < DISK_WARN_BYTES || pct < 5) && worst !== 'fail') worst = 'warn';
  }
  const detail = lines.join('; ') || 'nothing to measure';
  const fix = 'free space: a vault or state write needs room for a full copy of the file, and Docker needs room for containers';
  return worst === 'pass' ? pass(id, title, detail) : worst === 'warn' ? warn(id, title, detail, fix) : fail(id, title, detail, fix);
}

function nearestExisting(path: string): string | undefined {
  let p = path;
  for (;;) {
    if (existsSync(p)) return p;
    const up = dirname(p);
    if (up === p) return undefined;
    p = up;
  }
}

function gib(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}
