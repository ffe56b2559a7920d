// The `vault` provider's dso.yaml entry (HashiCorp Vault or OpenBao, KV v1/v2): where Vault is,
// which KV mount to read, the namespace, TLS, and how to log in. Both the seed's
// `mount_path: secret/data` and `mount: secret` + `kv_version` are accepted and become one
// canonical form, `{ mount, kv_version }`, which this schema also accepts (the provider's
// Worker checks the parsed entry again).
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * A mount or namespace: `/`-separated segments of letters, digits, `_`, `.` and `-`, each starting
 * with a letter, digit or `_` (so never `.` or `..`); leading and trailing `/` are dropped.
 */
const PATH_SEGMENTS = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Where a Kubernetes pod finds its service account token. */
export const KUBERNETES_JWT_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

const INLINE_CREDENTIAL =
  'a credential written in dso.yaml would be readable by anyone who can read the file (and by its backups and copies); put it in a file (the _file key, mode 0600) or an environment variable (the _env key) instead';

const envName = (key: string, example: string) =>
  v.pipe(v.string(`${key} must name an environment variable`), v.regex(ENV_NAME, `${key} must be a variable name like ${example}`));
const filePath = (key: string) => v.pipe(v.string(`${key} must be a file path`), v.minLength(1, `${key} must not be empty`));
const trimSlashes = (s: string) => s.replace(/^\/+|\/+$/g, '');
const segments = (key: string, example: string) =>
  v.pipe(v.string(`${key} must be a path like ${example}`), v.transform(trimSlashes), v.regex(PATH_SEGMENTS, `${key} must be a path like ${example}: segments of letters, digits, _ . and -`));
const authMount = (method: string) => v.optional(segments('mount', method), method);

function addrIsUsable(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' && u.search === '' && u.hash === '' && u.hostname !== '';
  } catch {
    return false;
  }
}

const ADDR_FORM = 'addr must be Vault\'s http(s) URL like https://vault.example.com:8200, without credentials, query or fragment';

const tokenAuth = v.pipe(
  v.strictObject(
    {
      method: v.literal('token'),
      token_env: v.optional(envName('token_env', 'VAULT_TOKEN')),
      token_file: v.optional(filePath('token_file')),
      token: v.optional(v.never(`token: ${INLINE_CREDENTIAL}: token_env: VAULT_TOKEN or token_file: /etc/dso/vault-token`)),
    },
    'auth with method token takes token_env or token_file',
  ),
  v.check((a) => (a.token_env === undefined) !== (a.token_file === undefined), 'give exactly one of token_env and token_file'),
);

const approleAuth = v.pipe(
  v.strictObject(
    {
      method: v.literal('approle'),
      // A role id names the role; it is not a secret on its own, so it may be written inline.
      role_id: v.optional(v.pipe(v.string('role_id must be the AppRole role id'), v.minLength(1, 'role_id must not be empty'))),
      role_id_env: v.optional(envName('role_id_env', 'VAULT_ROLE_ID')),
      role_id_file: v.optional(filePath('role_id_file')),
      secret_id_env: v.optional(envName('secret_id_env', 'VAULT_SECRET_ID')),
      secret_id_file: v.optional(filePath('secret_id_file')),
      secret_id: v.optional(v.never(`secret_id: ${INLINE_CREDENTIAL}: secret_id_env or secret_id_file`)),
      mount: authMount('approle'),
    },
    'auth with method approle takes role_id (or role_id_env, role_id_file), secret_id_env or secret_id_file, and mount',
  ),
  v.check((a) => [a.role_id, a.role_id_env, a.role_id_file].filter((x) => x !== undefined).length === 1, 'give exactly one of role_id, role_id_env and role_id_file'),
  v.check((a) => a.secret_id_env === undefined || a.secret_id_file === undefined, 'give at most one of secret_id_env and secret_id_file'),
);

const kubernetesAuth = v.strictObject(
  {
    method: v.literal('kubernetes'),
    role: v.pipe(v.string('role must be the Vault role of the Kubernetes auth method'), v.minLength(1, 'role must not be empty')),
    jwt_file: v.optional(filePath('jwt_file'), KUBERNETES_JWT_FILE),
    jwt: v.optional(v.never(`jwt: ${INLINE_CREDENTIAL}: jwt_file`)),
    mount: authMount('kubernetes'),
  },
  'auth with method kubernetes takes role, jwt_file and mount',
);

const jwtAuth = v.pipe(
  v.strictObject(
    {
      method: v.literal('jwt'),
      role: v.pipe(v.string('role must be the Vault role of the JWT auth method'), v.minLength(1, 'role must not be empty')),
      jwt_env: v.optional(envName('jwt_env', 'VAULT_JWT')),
      jwt_file: v.optional(filePath('jwt_file')),
      jwt: v.optional(v.never(`jwt: ${INLINE_CREDENTIAL}: jwt_env or jwt_file`)),
      mount: authMount('jwt'),
    },
    'auth with method jwt takes role, jwt_env or jwt_file, and mount',
  ),
  v.check((a) => (a.jwt_env === undefined) !== (a.jwt_file === undefined), 'give exactly one of jwt_env and jwt_file'),
);

const tlsSchema = v.pipe(
  v.strictObject(
    {
      ca_cert: v.optional(filePath('ca_cert')),
      insecure: v.optional(v.boolean('insecure must be true or false')),
      server_name: v.optional(v.pipe(v.string('server_name must be a host name'), v.regex(HOSTNAME, 'server_name must be a host name like vault.example.com'))),
    },
    'tls takes ca_cert, insecure and server_name',
  ),
  v.check((t) => !(t.insecure === true && t.ca_cert !== undefined), 'give ca_cert or insecure: true, not both (insecure skips the check ca_cert is for)'),
);

const entrySchema = v.strictObject(
  {
    addr: v.pipe(v.string(ADDR_FORM), v.check(addrIsUsable, ADDR_FORM), v.transform((s) => s.replace(/\/+$/, ''))),
    mount_path: v.optional(segments('mount_path', 'secret/data')),
    mount: v.optional(segments('mount', 'secret')),
    kv_version: v.optional(v.picklist([1, 2], 'kv_version must be 1 or 2')),
    namespace: v.optional(segments('namespace', 'team-a or admin/team-a')),
    tls: v.optional(tlsSchema),
    auth: v.variant('method', [tokenAuth, approleAuth, kubernetesAuth, jwtAuth], 'auth.method must be token, approle, kubernetes or jwt'),
  },
  'the vault provider takes the keys addr, mount_path (or mount and kv_version), namespace, tls and auth',
);

type Entry = v.InferOutput<typeof entrySchema>;

/** The KV mount and version an entry names, or why it names none. */
function kvMount(e: Entry): { mount: string; kv_version: 1 | 2 } | string {
  if (e.mount_path !== undefined && e.mount !== undefined) return 'give mount_path or mount, not both';
  if (e.mount_path !== undefined) {
    // The seed's form is the API prefix secrets are read at: `<mount>/data` for KV v2.
    if (e.mount_path.endsWith('/data')) {
      if (e.kv_version === 1) return 'mount_path ending in /data is a KV v2 prefix; for KV v1 give mount: NAME with kv_version: 1';
      return { mount: e.mount_path.slice(0, -'/data'.length), kv_version: 2 };
    }
    if (e.kv_version === 1) return { mount: e.mount_path, kv_version: 1 };
    return 'mount_path is the KV v2 read prefix like secret/data; for a KV v1 mount add kv_version: 1, or write mount: NAME with kv_version: 1 or 2';
  }
  return { mount: e.mount ?? 'secret', kv_version: e.kv_version ?? 2 };
}

export const vaultSchema = v.pipe(
  entrySchema,
  v.check((e) => typeof kvMount(e) !== 'string', (issue) => kvMount(issue.input as Entry) as string),
  v.check((e) => e.tls === undefined || e.addr.startsWith('https:'), 'tls applies to an https addr; with http:// nothing is encrypted or verified'),
  v.transform((e) => {
    const { mount_path: _seedForm, mount: _mount, kv_version: _version, ...rest } = e;
    return { ...rest, ...(kvMount(e) as { mount: string; kv_version: 1 | 2 }) };
  }),
);

export type VaultConfig = v.InferOutput<typeof vaultSchema>;
export type VaultAuthConfig = VaultConfig['auth'];

export const definition: ProviderDefinition<VaultConfig> = {
  kind: 'vault',
  schema: vaultSchema,
  environment: (c) => {
    const a = c.auth;
    switch (a.method) {
      case 'token':
        return a.token_env === undefined ? [] : [a.token_env];
      case 'approle':
        return [a.role_id_env, a.secret_id_env].filter((x): x is string => x !== undefined);
      case 'jwt':
        return a.jwt_env === undefined ? [] : [a.jwt_env];
      case 'kubernetes':
        return [];
    }
  },
  // TLS settings reach Bun's fetch directly (tls.ca, rejectUnauthorized, serverName), so no
  // NODE_EXTRA_CA_CERTS and no need to start in a process of its own.
  defaultIsolation: 'worker',
};
