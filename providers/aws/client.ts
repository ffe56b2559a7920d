// The AWS Secrets Manager provider: one SDK client per provider, GetSecretValue for `get` (a
// version id or a staging label), ListSecrets for `list`. Runs inside its Worker or process; the
// SDK is loaded here, never on DSO's main thread.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError, type CreateProvider, type GetOptions, type Provider, type ProviderContext } from '../../src/providers/contract.ts';
import { isConnectionError } from '../../src/providers/http-status.ts';
import { sanitize } from '../../src/providers/sanitize.ts';
import { untilAborted } from '../../src/abortable.ts';
import { defaultChain, machineRole, roleSource } from './auth_chain.ts';
import { profileCredentials } from './auth_profile.ts';
import { ssoCredentials } from './auth_sso.ts';
import { staticKeys } from './auth_static.ts';
import { CURRENT_STAGE, type AwsAuthConfig, type AwsConfig } from './config.ts';
import { awsError, type AwsErrorContext } from './errors.ts';
import { RESPONSE_CHECK_OPTIONS, responseCheck } from './responses.ts';

/**
 * One retry, for a throttled or failed request (AWS's standard retry mode, with its backoff).
 * More would only run into DSO's own deadline: the call's signal bounds the whole of it.
 */
const MAX_ATTEMPTS = 2;
/** The most pages `list` reads (100 names each). */
const MAX_LIST_PAGES = 100;
/** Environment variables of the default chain that hold credentials, to keep out of messages. */
const SECRET_VARIABLES = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN'];
/** How AWS writes a version id: a UUID (any other string is taken as a staging label). */
const VERSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Credentials {
  source: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Credential values to remove from any message. */
  known: string[];
  /** The credential source being asked right now, if any: a call that times out names it. */
  fetching?: () => string | undefined;
}

async function credentialsFor(auth: AwsAuthConfig, env: Readonly<Record<string, string>>): Promise<Credentials> {
  switch (auth.method) {
    case 'static': {
      const keys = staticKeys(auth, env);
      return { source: keys, known: [keys.secretAccessKey, ...(keys.sessionToken ? [keys.sessionToken] : [])] };
    }
    case 'profile':
      return { ...labelled(await profileCredentials(auth, env), `profile ${auth.profile}`), known: [] };
    case 'sso':
      return { ...labelled(await ssoCredentials(auth, env), `SSO profile ${auth.profile}`), known: [] };
    case 'iam':
      return { ...labelled(await machineRole(env), roleSource(env)), known: [] };
    case 'default': {
      // The container endpoint and the metadata service are read by DSO and fail with their own
      // ProviderErrors, which name them; the label covers the SDK's links (profiles, web identity).
      const chain = await defaultChain(env);
      const { source, fetching } = labelled(chain.provider, 'the default credential chain');
      return { source, fetching: () => (fetching() === undefined ? undefined : (chain.asking() ?? 'the default credential chain')), known: [] };
    }
  }
}

/**
 * `provider` with its failures said as DSO's: a credential source that cannot be reached (the
 * metadata service, the SSO portal) is `unavailable`, one that has nothing or refuses is `auth`,
 * and neither is mistaken for Secrets Manager failing.
 */
function labelled(provider: AwsCredentialIdentityProvider, from: string): Required<Pick<Credentials, 'source' | 'fetching'>> {
  let asking = 0;
  const source: AwsCredentialIdentityProvider = async (options) => {
    asking++;
    try {
      return await provider(options);
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      const name = (e as { name?: unknown })?.name;
      const said = String((e as { message?: unknown })?.message ?? e).split('\n')[0]!;
      const message = sanitize(said, []).slice(0, 300);
      const status = (e as { statusCode?: unknown })?.statusCode;
      if (isConnectionError(e)) throw new ProviderError('unavailable', `cannot reach ${from} for credentials (${(e as { code?: string }).code ?? 'connection failed'})`);
      // A source that is there but broken is not a credential problem: the operator can only wait
      // or fix the service. What it answered is not quoted (it may hold a credential, or garbage).
      if (typeof status === 'number' && (status >= 500 || status === 429)) throw new ProviderError('unavailable', `${from} failed (HTTP ${status}) while DSO asked it for credentials`);
      if (/^TimeoutError\b/.test(said)) throw new ProviderError('timeout', `${from} did not answer in time while DSO asked it for credentials`);
      if (name === 'SyntaxError' || /^Invalid response received|unescaped characters/.test(said)) {
        throw new ProviderError('invalid_response', `${from} answered something that is not AWS credentials`);
      }
      throw new ProviderError('auth', `no usable AWS credentials from ${from}${typeof name === 'string' && !['Error', 'CredentialsProviderError', 'ProviderError'].includes(name) ? ` (${name})` : ''}: ${message}`);
    } finally {
      asking--;
    }
  };
  return { source, fetching: () => (asking > 0 ? from : undefined) };
}

/** What to ask for: a version id, a staging label, or the configured default label. */
export function versionSelector(version: string | undefined, defaultStage: string): { VersionId?: string; VersionStage?: string } {
  if (version === undefined) return defaultStage === CURRENT_STAGE ? {} : { VersionStage: defaultStage };
  return VERSION_ID.test(version) ? { VersionId: version } : { VersionStage: version };
}

export const createProvider: CreateProvider<AwsConfig> = async (config: AwsConfig, ctx: ProviderContext): Promise<Provider> => {
  const region = config.region ?? (ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION);
  if (!region) throw new ProviderError('config', 'no AWS region: set region: in dso.yaml (or AWS_REGION in DSO\'s environment)');
  const credentials = await credentialsFor(config.auth ?? { method: 'default' }, ctx.env);
  const { SecretsManagerClient, GetSecretValueCommand, ListSecretsCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({
    region,
    credentials: credentials.source,
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'standard',
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
  });
  // Credentials the SDK's chain may read from the environment, besides those read here.
  const known = [...credentials.known, ...SECRET_VARIABLES.map((n) => ctx.env[n]).filter((x): x is string => Boolean(x))];
  const target = config.endpoint === undefined ? `Secrets Manager in ${region}` : `Secrets Manager at ${new URL(config.endpoint).host}`;
  const defaultStage = config.version_stage ?? CURRENT_STAGE;

  const errorContext = (doing: string, signal: AbortSignal): AwsErrorContext => ({ doing, signal, known, ...(credentials.fetching ? { fetchingCredentials: credentials.fetching } : {}) });

  return {
    capabilities: { list: true, watch: false, versions: true },

    async get(path: string, options: GetOptions) {
      const selector = versionSelector(options.version, defaultStage);
      const doing = `reading ${path}${selector.VersionId ? ` version ${selector.VersionId}` : selector.VersionStage ? ` stage ${selector.VersionStage}` : ''} from ${target}`;
      const command = new GetSecretValueCommand({ SecretId: path, ...selector });
      command.middlewareStack.add(responseCheck(options.maxBytes), RESPONSE_CHECK_OPTIONS);
      let out;
      try {
        // Credentials are fetched (the metadata service, SSO) without the signal: the wait ends
        // at the deadline even when they hang.
        out = await untilAborted(client.send(command, { abortSignal: options.signal }), options.signal);
      } catch (e) {
        throw awsError(e, { ...errorContext(doing, options.signal), maxBytes: options.maxBytes });
      }
      const tooLarge = (size: number) => new ProviderError('too_large', `${doing}: the value is ${size} bytes, over the ${options.maxBytes}-byte limit`);
      let value: Uint8Array;
      if (typeof out.SecretString === 'string') {
        // Each UTF-16 unit is at least one UTF-8 byte: a string this long is too big already.
        if (out.SecretString.length > options.maxBytes) throw tooLarge(out.SecretString.length);
        // The SDK parsed the answer into a JavaScript string (and the JSON text it came in):
        // those copies cannot be wiped and stay until the garbage collector reuses them. From
        // here on the value is bytes this provider allocated, which DSO owns and wipes.
        value = new TextEncoder().encode(out.SecretString);
        if (value.length > options.maxBytes) {
          const size = value.length;
          value.fill(0);
          throw tooLarge(size);
        }
      } else if (out.SecretBinary instanceof Uint8Array) {
        const binary = out.SecretBinary;
        if (binary.length > options.maxBytes) {
          binary.fill(0);
          throw tooLarge(binary.length);
        }
        // A buffer of our own (the SDK's may be a view into a bigger one); the SDK's is wiped.
        // The base64 text it was decoded from remains a string.
        value = new Uint8Array(binary);
        binary.fill(0);
      } else {
        throw new ProviderError('invalid_response', `${doing}: Secrets Manager answered without SecretString or SecretBinary`);
      }
      return { value, ...(typeof out.VersionId === 'string' ? { version: out.VersionId } : {}) };
    },

    async list(prefix: string, options: { signal: AbortSignal }) {
      const names: string[] = [];
      let token: string | undefined;
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        // AWS's name filter matches a prefix, ignoring case: the exact prefix is checked below.
        const command = new ListSecretsCommand({
          MaxResults: 100,
          ...(prefix === '' ? {} : { Filters: [{ Key: 'name', Values: [prefix] }] }),
          ...(token === undefined ? {} : { NextToken: token }),
        });
        command.middlewareStack.add(responseCheck(undefined), RESPONSE_CHECK_OPTIONS);
        let out;
        try {
          out = await untilAborted(client.send(command, { abortSignal: options.signal }), options.signal);
        } catch (e) {
          throw awsError(e, errorContext(`listing ${prefix === '' ? 'secrets' : `secrets under ${prefix}`} in ${target}`, options.signal));
        }
        for (const s of out.SecretList ?? []) if (typeof s.Name === 'string' && s.Name.startsWith(prefix)) names.push(s.Name);
        token = out.NextToken;
        if (!token) break;
      }
      return [...new Set(names)].sort();
    },

    async close() {
      client.destroy();
    },
  };
};
