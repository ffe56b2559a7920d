// The Azure Key Vault provider: a SecretClient for the configured vault, logged in through the
// configured Entra ID method, reading secrets by name (and version) and listing names.
import { readFileSync } from 'node:fs';
import { SecretClient } from '@azure/keyvault-secrets';
import { createDefaultHttpClient, RestError, type HttpClient, type PipelinePolicy } from '@azure/core-rest-pipeline';
import { ProviderError, type CreateProvider, type Provider } from '../../src/providers/contract.ts';
import { isKeyVaultHost } from './clouds.ts';
import type { AzureConfig } from './config.ts';
import { buildCredential } from './credential.ts';
import { toProviderError } from './errors.ts';
import { createFetchHttpClient } from './http-client.ts';
import { isSecretName, isVersionId, SECRET_NAME_RULE, VERSION_RULE } from './names.ts';
import { proxySettings, type ProxySettings } from './proxy.ts';
import { RETRY_OPTIONS } from './auth_options.ts';
import { recordFailures } from './recording-client.ts';
import { untilAborted } from '../../src/abortable.ts';

/** More names than any vault should hold; a list stops there rather than paging forever. */
const MAX_LISTED = 100_000;

export const createProvider: CreateProvider<AzureConfig> = async (config, ctx) => {
  // One client for the vault and the logins: the SDK's own, or fetch with the configured CA.
  const vaultUrl = new URL(config.vault_url);
  const vaultHost = vaultUrl.host;
  const httpClient = recordFailures(config.tls === undefined ? createDefaultHttpClient() : caClient(config.tls.ca_cert, proxySettings(ctx.env)), { valueHost: vaultHost });
  const { credential, secrets, loginHost, loginService, loggingIn } = buildCredential(config, ctx.env, httpClient);
  const errors = {
    // Values of the provider's variables are credentials too (the host scrubs them as well).
    known: [...secrets, ...Object.values(ctx.env).filter((x) => x.length >= 8)],
    loginFailure: () => httpClient.failureFor(loginHost),
    loginAnswer: () => httpClient.answerFor(loginHost),
    loggingIn,
    ...(loginService === undefined ? {} : { loginService }),
  };
  const client = new SecretClient(config.vault_url, credential, {
    httpClient,
    // The SDK refuses a challenge whose resource is not a parent domain of the vault's host
    // (vault.azure.net for NAME.vault.azure.net), which protects tokens from a vault URL that is
    // not Key Vault. A private endpoint alias, a proxy or a test vault is on another host, where
    // that check can only fail: it is turned off there alone, and credential.ts still refuses to
    // get a token for anything but Key Vault.
    ...(isKeyVaultHost(vaultUrl.hostname) ? {} : { disableChallengeResourceVerification: true }),
    retryOptions: RETRY_OPTIONS,
    additionalPolicies: [{ policy: jsonAnswersOnly, position: 'perCall' }],
  });

  const provider: Provider = {
    capabilities: { list: true, watch: false, versions: true },
    async get(name, options) {
      if (!isSecretName(name)) throw new ProviderError('not_found', `${JSON.stringify(name.slice(0, 200))} cannot be a Key Vault secret: ${SECRET_NAME_RULE}`);
      if (options.version !== undefined && !isVersionId(options.version)) {
        throw new ProviderError('not_found', `${JSON.stringify(options.version.slice(0, 100))} cannot be a version of ${name}: ${VERSION_RULE}`);
      }
      const what = `reading secret ${name}${options.version === undefined ? '' : ` version ${options.version}`} from ${vaultHost}`;
      let secret;
      try {
        // The identity library does not pass the signal to its login requests: a hanging login
        // would hold the call past its deadline, so the wait itself ends at the deadline.
        secret = await untilAborted(client.getSecret(name, { abortSignal: options.signal, ...(options.version === undefined ? {} : { version: options.version }) }), options.signal);
      } catch (e) {
        throw toProviderError(e, what, options.signal, errors);
      }
      // The SDK hands the value over as a string: that copy (and the JSON text it was parsed from)
      // cannot be wiped and stays in this Worker or process until it is collected. The bytes
      // returned are a fresh buffer that DSO owns and wipes.
      const text = secret.value;
      if (typeof text !== 'string') throw new ProviderError('invalid_response', `${what}: Key Vault returned no value`);
      const size = Buffer.byteLength(text, 'utf8');
      if (size > options.maxBytes) throw new ProviderError('too_large', `${what}: the value is ${size} bytes, over the ${options.maxBytes}-byte limit`);
      const value = new TextEncoder().encode(text);
      return { value, ...(secret.properties.version === undefined ? {} : { version: secret.properties.version }) };
    },
    async list(prefix, options) {
      const names: string[] = [];
      try {
        const pages = client.listPropertiesOfSecrets({ abortSignal: options.signal }).byPage();
        for (let page = await untilAborted(pages.next(), options.signal); !page.done; page = await untilAborted(pages.next(), options.signal)) {
          for (const properties of page.value) {
            // A disabled secret cannot be read without pinning an older version: not listed, as
            // a list is meant to offer what `get` can read.
            if (properties.name.startsWith(prefix) && properties.enabled !== false) names.push(properties.name);
          }
          if (names.length >= MAX_LISTED) break;
        }
      } catch (e) {
        throw toProviderError(e, `listing secrets in ${vaultHost}`, options.signal, errors);
      }
      return names.sort();
    },
    async close() {
      // Nothing to release: the SDK keeps no timers, and the credential strings it holds cannot
      // be wiped; they end with this Worker or process.
    },
  };
  return provider;
};

/**
 * A successful answer from the vault that is not JSON (a proxy's or a captive portal's page) is
 * refused before the SDK parses it: the SDK would fail on it with a TypeError of its own.
 */
const jsonAnswersOnly: PipelinePolicy = {
  name: 'dsoJsonAnswersOnly',
  async sendRequest(request, next) {
    const response = await next(request);
    const type = response.headers.get('content-type') ?? '';
    if (response.status >= 200 && response.status < 300 && !/\bjson\b/i.test(type)) {
      // Not the response itself: its body is not ours to carry into a message.
      throw new RestError(`the answer is ${type === '' ? 'untyped' : type.split(';')[0]!.slice(0, 60)}, not Key Vault's JSON`, { code: 'NOT_JSON', statusCode: response.status, request });
    }
    return response;
  },
};

function caClient(caFile: string, proxy: ProxySettings): HttpClient {
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (e) {
    throw new ProviderError('config', `cannot read the CA certificate file ${caFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ProviderError('config', `the CA certificate file ${caFile} must hold PEM certificates`);
  return createFetchHttpClient({ ca, proxy });
}
