// The HashiCorp Vault provider: node-vault over DSO's own HTTP layer (transport.ts), a session
// that logs in and keeps the token alive (session.ts), and KV v1/v2 reads and lists (kv.ts).
// Loaded only inside the provider's Worker or process.
import { readFileSync } from 'node:fs';
import NodeVault from 'node-vault';
import { ProviderError, type CreateProvider, type Provider, type ProviderContext } from '../../src/providers/contract.ts';
import { callOptions, type VaultApi } from './api.ts';
import { approleAuth } from './auth_approle.ts';
import { jwtAuth } from './auth_jwt.ts';
import { kubernetesAuth } from './auth_kubernetes.ts';
import { tokenAuth } from './auth_token.ts';
import type { VaultAuthConfig, VaultConfig } from './config.ts';
import { vaultAnswer, vaultError } from './errors.ts';
import { checkPath, keysFromAnswer, listPath, notFoundError, readPath, secretFromAnswer } from './kv.ts';
import type { AuthMethod } from './login.ts';
import { Session } from './session.ts';
import { answerLimit, vaultTransport, type VaultTls } from './transport.ts';

/** The limit for the first login, inside the host's own 30 s start limit. */
const START_TIMEOUT_MS = 25_000;

export const createProvider: CreateProvider<VaultConfig> = async (config, ctx) => {
  const api = vaultClient(config);
  const host = new URL(config.addr).hostname;
  if (config.addr.startsWith('http:') && !['localhost', '127.0.0.1', '[::1]'].includes(host)) {
    ctx.log('warn', `addr ${config.addr} is plain http: the token and the secret values cross the network unencrypted`);
  }
  const session = new Session(api, authMethod(config.auth, api, ctx.env), { log: ctx.log });
  await session.start(AbortSignal.timeout(START_TIMEOUT_MS));

  /** Runs `send` with the token; on 403, tells a dead token (replace, retry once) from a denied path. */
  async function withToken<T>(signal: AbortSignal, send: (token: string) => Promise<T>): Promise<T> {
    const token = await session.token(signal);
    try {
      return await send(token);
    } catch (e) {
      if (vaultAnswer(e)?.status !== 403) throw e;
      if (!(await session.recover(token, signal))) throw e;
      return send(await session.token(signal));
    }
  }

  const provider: Provider = {
    capabilities: { list: true, watch: false, versions: config.kv_version === 2 },

    async get(path, options) {
      checkPath(path);
      const doing = `reading ${path} from Vault`;
      const where = readPath(config.mount, config.kv_version, path, options.version);
      let body: unknown;
      try {
        body = await withToken(options.signal, (token) => api.read(where, callOptions(token, options.signal, answerLimit(options.maxBytes))));
      } catch (e) {
        const answer = vaultAnswer(e, session.known());
        if (answer?.status === 404) throw notFoundError(answer.body, path, options.version);
        throw vaultError(e, doing, session.known());
      }
      const secret = secretFromAnswer(body, config.kv_version, path);
      // The value is the JSON text of the secret's fields, as bytes DSO owns. JSON.parse (in
      // transport.ts) and JSON.stringify here make strings of it that cannot be wiped.
      const value = new TextEncoder().encode(JSON.stringify(secret.data));
      if (value.length > options.maxBytes) {
        value.fill(0);
        throw new ProviderError('too_large', `${doing}: the value is ${value.length} bytes, over the ${options.maxBytes}-byte limit`);
      }
      return { value, ...(secret.version === undefined ? {} : { version: secret.version }) };
    },

    /** Names directly under `prefix`'s folder that start with the rest of it; sub-folders end in '/'. */
    async list(prefix, options) {
      const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const start = prefix.slice(folder.length);
      if (folder !== '') checkPath(folder.slice(0, -1), 'folder');
      let body: unknown;
      try {
        body = await withToken(options.signal, (token) => api.list(listPath(config.mount, config.kv_version, folder), callOptions(token, options.signal)));
      } catch (e) {
        // Vault answers 404 to a LIST of a folder that holds nothing.
        if (vaultAnswer(e)?.status === 404) return [];
        throw vaultError(e, `listing ${folder || 'the mount'} in Vault`, session.known());
      }
      return keysFromAnswer(body, folder)
        .filter((k) => k.startsWith(start))
        .map((k) => folder + k);
    },

    async close() {
      session.close();
    },
  };
  return provider;
};

/**
 * node-vault, configured from dso.yaml alone. Its defaults read VAULT_ADDR, VAULT_TOKEN,
 * VAULT_NAMESPACE, VAULT_PREFIX and VAULT_SKIP_VERIFY from the environment; every one is set
 * here instead, and it keeps no token (the session passes it on each call).
 */
function vaultClient(config: VaultConfig): VaultApi {
  const client = NodeVault({
    apiVersion: 'v1',
    endpoint: config.addr,
    // Bun's fetch sends a LIST request as GET (measured with bun 1.4.5), so lists use
    // GET ...?list=1, which Vault documents as equivalent.
    noCustomHTTPVerbs: true,
    'request-promise': vaultTransport(tlsSettings(config)),
    // Its `debug` logger prints request bodies (a login's secret id or JWT) when DEBUG names it.
    debug: () => {},
  }) as NodeVault.client & { namespace?: string; pathPrefix?: string };
  client.namespace = config.namespace ?? '';
  client.pathPrefix = '';
  // Its login functions store the token they get on the client; this drops it.
  Object.defineProperty(client, 'token', { get: () => '', set: () => {}, configurable: false });
  return client;
}

function tlsSettings(config: VaultConfig): VaultTls | undefined {
  if (!config.addr.startsWith('https:')) return undefined;
  const tls = config.tls ?? {};
  let ca: string | undefined;
  if (tls.ca_cert !== undefined) {
    try {
      ca = readFileSync(tls.ca_cert, 'utf8');
    } catch (e) {
      throw new ProviderError('config', `cannot read tls.ca_cert ${tls.ca_cert} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ProviderError('config', `tls.ca_cert ${tls.ca_cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return { rejectUnauthorized: tls.insecure !== true, ...(ca === undefined ? {} : { ca }), ...(tls.server_name === undefined ? {} : { serverName: tls.server_name }) };
}

function authMethod(auth: VaultAuthConfig, api: VaultApi, env: ProviderContext['env']): AuthMethod {
  switch (auth.method) {
    case 'token':
      return tokenAuth(auth, api, env);
    case 'approle':
      return approleAuth(auth, api, env);
    case 'kubernetes':
      return kubernetesAuth(auth, api, env);
    case 'jwt':
      return jwtAuth(auth, api, env);
  }
}
