// A fake HashiCorp Vault for tests, over HTTP or HTTPS (Bun.serve), answering the documented
// HTTP API with Vault's own status codes and bodies: sys/health; auth/token/lookup-self and
// renew-self; AppRole, Kubernetes and JWT logins; KV v2 data reads (with ?version), metadata
// reads and lists; KV v1 reads and lists; namespaces by X-Vault-Namespace; tokens with TTLs,
// max TTLs and expiry; 403 for a dead token or a path outside the token's policy; 404
// {"errors":[]} for nothing there; 503 "Vault is sealed". Knobs make it slow, failing, sealed,
// or stream its answers without a Content-Length.
//
// Lists arrive as GET ...?list=true: Bun.serve drops a request whose method is LIST, and
// Bun's fetch sends LIST as GET anyway (measured with bun 1.4.5).
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'bun';
import type { VaultTestCa } from './tls.ts';

export interface TokenSpec {
  /** ACL paths the token may read and list, in Vault policy syntax: exact, `*` at the end, `+` for one segment. */
  paths?: string[];
  /** Every path, as the root policy. */
  root?: boolean;
  /** Seconds; 0 never expires (a root token). Default 3600. */
  ttl?: number;
  /** Default true. */
  renewable?: boolean;
  /** Seconds from issue after which renewals are capped; 0 for none (Vault's system max). */
  maxTtl?: number;
  /** The namespace the token lives in ('' for the root namespace). */
  namespace?: string;
}

interface Token {
  id: string;
  accessor: string;
  spec: Required<Omit<TokenSpec, 'namespace'>>;
  namespace: string;
  path: string;
  meta: Record<string, string> | null;
  issuedAt: number;
  ttl: number;
  /** ms since the epoch; 0 never. */
  expiresAt: number;
  revoked: boolean;
}

interface V2Version {
  data: Record<string, unknown> | null;
  created: string;
  deletionTime: string;
  destroyed: boolean;
}

interface KvMount {
  version: 1 | 2;
  v1: Map<string, Record<string, unknown>>;
  v2: Map<string, V2Version[]>;
}

type Role =
  | { kind: 'approle'; roleId: string; secretId?: string; name: string; token: TokenSpec }
  | { kind: 'kubernetes'; name: string; jwt: string; token: TokenSpec }
  | { kind: 'jwt'; name: string; jwt: string; token: TokenSpec };

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  /** The X-Vault-Namespace header, as sent ('' when absent). */
  namespace: string;
  withToken: boolean;
}

export interface FakeVaultStats {
  /** Successful logins by auth mount (`approle`, `kubernetes`, `jwt`, or a custom mount). */
  logins: Record<string, number>;
  /** Successful renew-self calls. */
  renewals: number;
  lookups: number;
  requests: RequestRecord[];
  /** Bytes of bodies sent in chunked mode. */
  bytesStreamed: number;
}

export interface FakeVault {
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (dso.yaml `addr`). */
  url: string;
  stats: FakeVaultStats;
  /** Mounts a KV engine (`secret` v2 and `kv` v1 exist in the root namespace from the start). */
  enableKv(mount: string, version: 1 | 2, namespace?: string): void;
  /** Writes a secret; for KV v2 a new version (returned), for KV v1 a replacement (0). */
  putSecret(path: string, data: Record<string, unknown>, at?: { mount?: string; namespace?: string }): number;
  /** Soft-deletes (or destroys) one version of a KV v2 secret. */
  deleteVersion(path: string, version: number, at?: { mount?: string; namespace?: string; destroy?: boolean }): void;
  createToken(spec?: TokenSpec): string;
  revokeToken(id: string): void;
  /** Every token issued so far (so a test can check that none appears where it must not). */
  issuedTokens(): string[];
  /** Every token issued so far expires now, as if its TTL had run out. */
  expireTokens(): void;
  addAppRole(role: { roleId: string; secretId?: string; name?: string; mount?: string; namespace?: string; token?: TokenSpec }): void;
  addKubernetesRole(role: { role: string; jwt: string; mount?: string; namespace?: string; token?: TokenSpec }): void;
  addJwtRole(role: { role: string; jwt: string; mount?: string; namespace?: string; token?: TokenSpec }): void;
  seal(sealed?: boolean): void;
  /** Answers every request this many milliseconds late (0: at once). */
  slow(ms: number): void;
  /** Answers every request but sys/health with this status and `{"errors":[message]}`, or normally again (null). */
  fail(status: number | null, message?: string): void;
  /** Streams answers in 64 KiB chunks without a Content-Length (the body-size knob). */
  chunked(on: boolean): void;
  /**
   * How a 403 reads: `plain` is `{"errors":["permission denied"]}`; `multierror` is what Vault 1.x
   * (go-multierror) answers: "1 error occurred: permission denied" for a denied path and
   * "2 errors occurred: permission denied, invalid token" for a dead token.
   */
  errorStyle: 'plain' | 'multierror';
  stop(): void;
}

const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
const KV1_LEASE = 2_764_800;
const tokenId = () => `hvs.${randomBytes(18).toString('base64url')}`;
const trimSlashes = (s: string) => s.replace(/^\/+|\/+$/g, '');
const iso = (ms: number) => new Date(ms).toISOString();

export async function startFakeVault(options: { tls?: VaultTestCa } = {}): Promise<FakeVault> {
  const stats: FakeVaultStats = { logins: {}, renewals: 0, lookups: 0, requests: [], bytesStreamed: 0 };
  const mounts = new Map<string, KvMount>();
  const tokens = new Map<string, Token>();
  const roles = new Map<string, Role>();
  let sealed = false;
  let delayMs = 0;
  let failure: { status: number; message: string } | null = null;
  let streamBodies = false;
  const key = (ns: string, name: string) => `${trimSlashes(ns)}\u0000${trimSlashes(name)}`;

  const respond = (status: number, payload: unknown): Response => {
    const text = JSON.stringify(payload);
    if (!streamBodies) return new Response(text, { status, headers: JSON_HEADERS });
    const bytes = new TextEncoder().encode(text);
    let at = 0;
    return new Response(
      new ReadableStream({
        pull(controller) {
          if (at >= bytes.length) {
            controller.close();
            return;
          }
          const chunk = bytes.subarray(at, at + 64 * 1024);
          at += chunk.length;
          stats.bytesStreamed += chunk.length;
          controller.enqueue(chunk);
        },
      }),
      { status, headers: JSON_HEADERS },
    );
  };
  const errors = (status: number, list: string[]) => respond(status, { errors: list });
  const envelope = (fields: Record<string, unknown>) => ({ request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: null, ...fields });
  const invalidToken = () => errors(403, [fake.errorStyle === 'multierror' ? '2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n' : 'permission denied']);
  const denied = () => errors(403, [fake.errorStyle === 'multierror' ? '1 error occurred:\n\t* permission denied\n\n' : 'permission denied']);

  function issue(spec: TokenSpec, namespace: string, path: string, meta: Record<string, string> | null): Token {
    const full = { paths: spec.paths ?? [], root: spec.root ?? false, ttl: spec.ttl ?? 3600, renewable: spec.renewable ?? true, maxTtl: spec.maxTtl ?? 0 };
    const now = Date.now();
    const token: Token = { id: tokenId(), accessor: randomBytes(12).toString('base64url'), spec: full, namespace: trimSlashes(spec.namespace ?? namespace), path, meta, issuedAt: now, ttl: full.ttl, expiresAt: full.ttl > 0 ? now + full.ttl * 1000 : 0, revoked: false };
    tokens.set(token.id, token);
    return token;
  }

  function policies(t: Token): string[] {
    return t.spec.root ? ['root'] : ['default', 'dso-test'];
  }

  function authBlock(t: Token, ttl: number) {
    return { client_token: t.id, accessor: t.accessor, policies: policies(t), token_policies: policies(t), metadata: t.meta, lease_duration: ttl, renewable: t.spec.renewable && t.ttl > 0, entity_id: '', token_type: 'service', orphan: true, mfa_requirement: null, num_uses: 0 };
  }

  /** The token a request carries, if Vault would accept it in namespace `ns`. */
  function validToken(header: string | null, ns: string): Token | undefined {
    const t = header ? tokens.get(header) : undefined;
    if (!t || t.revoked || (t.expiresAt !== 0 && Date.now() >= t.expiresAt)) return undefined;
    if (t.namespace !== '' && ns !== t.namespace && !ns.startsWith(`${t.namespace}/`)) return undefined;
    return t;
  }

  /** ACL check: the path as the token's namespace sees it, against its policy paths. */
  function allowed(t: Token, ns: string, path: string): boolean {
    if (t.spec.root) return true;
    const rel = ns.slice(t.namespace.length).replace(/^\//, '');
    const full = rel === '' ? path : `${rel}/${path}`;
    return t.spec.paths.some((p) => globMatch(p, full));
  }

  function findMount(ns: string, path: string): { name: string; mount: KvMount; rest: string } | undefined {
    let best: { name: string; mount: KvMount; rest: string } | undefined;
    for (const [k, mount] of mounts) {
      const [mns, name] = k.split('\u0000') as [string, string];
      if (mns !== ns) continue;
      if ((path === name || path.startsWith(`${name}/`)) && (!best || name.length > best.name.length)) best = { name, mount, rest: path.slice(name.length + 1) };
    }
    return best;
  }

  function listKeys(paths: Iterable<string>, folder: string): string[] {
    const keys = new Set<string>();
    for (const p of paths) {
      if (!p.startsWith(folder)) continue;
      const rest = p.slice(folder.length);
      const slash = rest.indexOf('/');
      keys.add(slash === -1 ? rest : rest.slice(0, slash + 1));
    }
    return [...keys].sort();
  }

  function metadataOf(v: V2Version, version: number) {
    return { created_time: v.created, custom_metadata: null, deletion_time: v.deletionTime, destroyed: v.destroyed, version };
  }

  async function login(ns: string, mount: string, req: Request): Promise<Response | undefined> {
    const candidates = [...roles.entries()].filter(([k]) => k.startsWith(`${key(ns, mount)}\u0000`)).map(([, r]) => r);
    // Not an auth mount in this namespace: the request falls through to the token check, as an
    // unknown path does in Vault (403 without a token).
    if (candidates.length === 0) return undefined;
    let body: Record<string, unknown> = {};
    try {
      const text = await req.text();
      body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      return errors(400, ['failed to parse JSON input: invalid character']);
    }
    const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string).trim() : '');
    const kind = candidates[0]!.kind;
    let found: Role | undefined;
    if (kind === 'approle') {
      const roleId = str('role_id');
      if (roleId === '') return errors(400, ['missing role_id']);
      found = candidates.find((r) => r.kind === 'approle' && r.roleId === roleId);
      if (!found || found.kind !== 'approle') return errors(400, ['invalid role or secret ID']);
      if (found.secretId !== undefined) {
        if (str('secret_id') === '') return errors(400, ['missing secret_id']);
        if (str('secret_id') !== found.secretId) return errors(400, ['invalid role or secret ID']);
      }
    } else if (kind === 'kubernetes') {
      if (str('role') === '') return errors(400, ['missing role']);
      if (str('jwt') === '') return errors(400, ['missing jwt']);
      found = candidates.find((r) => r.name === str('role'));
      if (!found || found.kind !== 'kubernetes') return errors(400, [`invalid role name "${str('role')}"`]);
      // A token the TokenReview API rejects.
      if (found.jwt !== str('jwt')) return errors(403, ['permission denied']);
    } else {
      // vault-plugin-auth-jwt checks the role before the token.
      if (str('role') === '') return errors(400, ['missing role']);
      found = candidates.find((r) => r.name === str('role'));
      if (!found || found.kind !== 'jwt') return errors(400, [`role "${str('role')}" could not be found`]);
      if (str('jwt') === '') return errors(400, ['missing token']);
      if (found.jwt !== str('jwt')) return errors(400, ['error validating token: failed to verify id token signature']);
    }
    const t = issue(found.token, ns, `auth/${mount}/login`, { role_name: found.name });
    stats.logins[mount] = (stats.logins[mount] ?? 0) + 1;
    return respond(200, envelope({ auth: authBlock(t, t.ttl) }));
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const nsHeader = req.headers.get('x-vault-namespace') ?? '';
    stats.requests.push({ method: req.method, path: url.pathname, query: url.search, namespace: nsHeader, withToken: req.headers.has('x-vault-token') });
    if (delayMs > 0) await Bun.sleep(delayMs);
    if (!url.pathname.startsWith('/v1/')) return errors(404, []);
    const path = decodeURIComponent(url.pathname.slice('/v1/'.length));
    const ns = trimSlashes(nsHeader);
    const method = req.method;

    if (path === 'sys/health' && (method === 'GET' || method === 'HEAD')) {
      const code = (name: string, fallback: number) => Number(url.searchParams.get(name) ?? fallback);
      const status = sealed ? code('sealedcode', 503) : code('activecode', 200);
      return respond(status, { initialized: true, sealed, standby: sealed, performance_standby: false, replication_performance_mode: 'disabled', replication_dr_mode: 'disabled', server_time_utc: Math.floor(Date.now() / 1000), version: '1.17.0', cluster_name: 'vault-cluster-fake', cluster_id: '5f2e9b1c-fake' });
    }
    if (sealed) return errors(503, ['Vault is sealed']);
    if (failure) return errors(failure.status, [failure.message]);

    const loginPath = /^auth\/(.+)\/login$/.exec(path);
    if (loginPath && (method === 'POST' || method === 'PUT')) {
      const answer = await login(ns, loginPath[1]!, req);
      if (answer) return answer;
    }

    const token = validToken(req.headers.get('x-vault-token'), ns);
    if (!token) return invalidToken();

    if (path === 'auth/token/lookup-self' && method === 'GET') {
      stats.lookups++;
      const now = Date.now();
      return respond(200, envelope({ data: { accessor: token.accessor, creation_time: Math.floor(token.issuedAt / 1000), creation_ttl: token.spec.ttl, display_name: 'token', entity_id: '', expire_time: token.expiresAt === 0 ? null : iso(token.expiresAt), explicit_max_ttl: 0, id: token.id, identity_policies: null, issue_time: iso(token.issuedAt), meta: token.meta, num_uses: 0, orphan: true, path: token.path, policies: policies(token), renewable: token.spec.renewable && token.ttl > 0, ttl: token.expiresAt === 0 ? 0 : Math.max(0, Math.floor((token.expiresAt - now) / 1000)), type: 'service' } }));
    }
    if (path === 'auth/token/renew-self' && (method === 'POST' || method === 'PUT')) {
      if (!token.spec.renewable || token.ttl === 0) return errors(400, ['lease is not renewable']);
      let body: { increment?: unknown } = {};
      try {
        const text = await req.text();
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        return errors(400, ['failed to parse JSON input: invalid character']);
      }
      const now = Date.now();
      let ttl = typeof body.increment === 'number' && body.increment > 0 ? body.increment : token.spec.ttl;
      let warnings: string[] | null = null;
      if (token.spec.maxTtl > 0) {
        const left = Math.floor((token.issuedAt + token.spec.maxTtl * 1000 - now) / 1000);
        if (ttl > left) {
          warnings = [`TTL of "${ttl}s" exceeded the effective max_ttl of "${left}s"; TTL value is capped accordingly`];
          ttl = Math.max(0, left);
        }
      }
      token.ttl = ttl;
      token.expiresAt = now + ttl * 1000;
      stats.renewals++;
      return respond(200, envelope({ auth: authBlock(token, ttl), warnings }));
    }

    if (method !== 'GET') return errors(405, ['unsupported operation']);
    const list = ['true', '1', 't'].includes(url.searchParams.get('list') ?? '');
    if (!allowed(token, ns, path)) return denied();
    const found = findMount(ns, path);
    if (!found) return errors(404, [`no handler for route "${path}". route entry not found.`]);
    const { mount, rest } = found;

    if (mount.version === 1) {
      if (list) {
        const keys = listKeys(mount.v1.keys(), rest === '' || rest.endsWith('/') ? rest : `${rest}/`);
        return keys.length === 0 ? errors(404, []) : respond(200, envelope({ data: { keys } }));
      }
      const data = mount.v1.get(rest);
      return data ? respond(200, envelope({ lease_duration: KV1_LEASE, data })) : errors(404, []);
    }

    if (rest.startsWith('metadata/') || rest === 'metadata') {
      const sub = rest.slice('metadata/'.length);
      if (list) {
        const keys = listKeys(mount.v2.keys(), sub === '' || sub.endsWith('/') ? sub : `${sub}/`);
        return keys.length === 0 ? errors(404, []) : respond(200, envelope({ data: { keys } }));
      }
      const versions = mount.v2.get(sub);
      if (!versions) return errors(404, []);
      return respond(200, envelope({ data: { cas_required: false, created_time: versions[0]!.created, current_version: versions.length, custom_metadata: null, delete_version_after: '0s', max_versions: 0, oldest_version: 0, updated_time: versions.at(-1)!.created, versions: Object.fromEntries(versions.map((v, i) => [String(i + 1), { created_time: v.created, deletion_time: v.deletionTime, destroyed: v.destroyed }])) } }));
    }
    if (rest.startsWith('data/') && !list) {
      const versions = mount.v2.get(rest.slice('data/'.length));
      if (!versions) return errors(404, []);
      const asked = url.searchParams.get('version');
      const n = asked === null || asked === '0' ? versions.length : Number(asked);
      if (!Number.isSafeInteger(n) || n < 0) return errors(400, ['invalid version']);
      const v = versions[n - 1];
      if (!v) return errors(404, []);
      if (v.destroyed || v.deletionTime !== '') return respond(404, envelope({ data: { data: null, metadata: metadataOf(v, n) } }));
      return respond(200, envelope({ data: { data: v.data, metadata: metadataOf(v, n) }, mount_type: 'kv' }));
    }
    return respond(404, { errors: [], warnings: ["Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."] });
  }

  const server: Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    ...(options.tls ? { tls: { cert: options.tls.serverCert, key: options.tls.serverKey } } : {}),
    fetch: handle,
  });

  const kvAt = (at: { mount?: string; namespace?: string } | undefined, version: 1 | 2): KvMount => {
    const m = mounts.get(key(at?.namespace ?? '', at?.mount ?? (version === 2 ? 'secret' : 'kv')));
    if (!m) throw new Error(`fake vault: no KV mount ${at?.mount} in namespace "${at?.namespace ?? ''}"`);
    return m;
  };

  const fake: FakeVault = {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`,
    stats,
    errorStyle: 'plain',
    enableKv(mount, version, namespace = '') {
      mounts.set(key(namespace, mount), { version, v1: new Map(), v2: new Map() });
    },
    putSecret(path, data, at) {
      const name = at?.mount ?? 'secret';
      const m = mounts.get(key(at?.namespace ?? '', name));
      if (!m) throw new Error(`fake vault: no KV mount ${name}`);
      if (m.version === 1) {
        m.v1.set(path, structuredClone(data));
        return 0;
      }
      const versions = m.v2.get(path) ?? [];
      versions.push({ data: structuredClone(data), created: iso(Date.now()), deletionTime: '', destroyed: false });
      m.v2.set(path, versions);
      return versions.length;
    },
    deleteVersion(path, version, at) {
      const v = kvAt(at, 2).v2.get(path)?.[version - 1];
      if (!v) throw new Error(`fake vault: no version ${version} of ${path}`);
      if (at?.destroy) {
        v.destroyed = true;
        v.data = null;
      } else v.deletionTime = iso(Date.now());
    },
    createToken(spec = {}) {
      return issue(spec, spec.namespace ?? '', 'auth/token/create', null).id;
    },
    revokeToken(id) {
      const t = tokens.get(id);
      if (t) t.revoked = true;
    },
    issuedTokens() {
      return [...tokens.keys()];
    },
    expireTokens() {
      for (const t of tokens.values()) if (t.expiresAt !== 0) t.expiresAt = Date.now() - 1;
    },
    addAppRole(r) {
      const mount = r.mount ?? 'approle';
      roles.set(`${key(r.namespace ?? '', mount)}\u0000${r.roleId}`, { kind: 'approle', roleId: r.roleId, ...(r.secretId === undefined ? {} : { secretId: r.secretId }), name: r.name ?? 'dso', token: { ...r.token, namespace: r.namespace ?? '' } });
    },
    addKubernetesRole(r) {
      roles.set(`${key(r.namespace ?? '', r.mount ?? 'kubernetes')}\u0000${r.role}`, { kind: 'kubernetes', name: r.role, jwt: r.jwt, token: { ...r.token, namespace: r.namespace ?? '' } });
    },
    addJwtRole(r) {
      roles.set(`${key(r.namespace ?? '', r.mount ?? 'jwt')}\u0000${r.role}`, { kind: 'jwt', name: r.role, jwt: r.jwt, token: { ...r.token, namespace: r.namespace ?? '' } });
    },
    seal(on = true) {
      sealed = on;
    },
    slow(ms) {
      delayMs = ms;
    },
    fail(status, message = 'internal error') {
      failure = status === null ? null : { status, message };
    },
    chunked(on) {
      streamBodies = on;
    },
    stop() {
      server.stop(true);
    },
  };
  fake.enableKv('secret', 2);
  fake.enableKv('kv', 1);
  return fake;
}

/** Vault's policy path matching: `*` at the end matches any rest, `+` matches one segment. */
function globMatch(pattern: string, path: string): boolean {
  const prefix = pattern.endsWith('*');
  const pat = (prefix ? pattern.slice(0, -1) : pattern).split('/');
  const parts = path.split('/');
  if (!prefix && pat.length !== parts.length) return false;
  for (let i = 0; i < pat.length; i++) {
    const p = pat[i]!;
    const s = parts[i];
    if (s === undefined) return false;
    const last = i === pat.length - 1;
    if (p === '+') continue;
    if (last && prefix ? !s.startsWith(p) : s !== p) return false;
  }
  return true;
}
