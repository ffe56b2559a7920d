// The task's or pod's role from the container credentials endpoint (ECS task roles, EKS Pod
// Identity, Greengrass), as the SDK's fromHttp gets it: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
// on ECS's link-local host, else AWS_CONTAINER_CREDENTIALS_FULL_URI, which must be https or one
// of the hosts the SDK allows over http; the Authorization header from
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read again for every request: EKS rotates it) or
// AWS_CONTAINER_AUTHORIZATION_TOKEN. Unlike the SDK's reader, the answer is read within a size
// limit, and a failure is tried once more, not three times a second apart past DSO's deadline.
import { readFile } from 'node:fs/promises';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { keptUntilExpiry, parseCredentialsDocument, requestCapped, withOneRetry } from './credential_http.ts';

const SOURCE = 'the container credentials endpoint';
/** Where ECS serves the RELATIVE_URI. */
const ECS_HOST = 'http://169.254.170.2';
/** Hosts the SDK (checkUrl.js) lets a FULL_URI use over plain http: ECS's, EKS Pod Identity's, loopback. */
const LINK_LOCAL_HOSTS = ['169.254.170.2', '169.254.170.23', '[fd00:ec2::23]', 'localhost', '[::1]', '[0000:0000:0000:0000:0000:0000:0000:0001]'];
const LOOPBACK_V4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export interface ContainerOptions {
  /** Each request's limit (the SDK's 1 s). */
  timeoutMs: number;
  /** The provider's environment (the endpoint and the token, or its file). */
  env: Readonly<Record<string, string>>;
}

/** Whether the environment names a container credentials endpoint (the SDK then uses it before the instance role). */
export function hasContainerEndpoint(env: Readonly<Record<string, string>>): boolean {
  return Boolean(env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI);
}

export function containerCredentials(options: ContainerOptions): AwsCredentialIdentityProvider {
  const { env, timeoutMs } = options;
  const url = endpointUrl(env);
  const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  const token = env.AWS_CONTAINER_AUTHORIZATION_TOKEN;

  const authorization = async (): Promise<Record<string, string>> => {
    // The file wins over the variable, as in the SDK.
    let value: string;
    if (tokenFile) {
      try {
        value = await readFile(tokenFile, 'utf8');
      } catch (e) {
        throw new ProviderError('auth', `cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ${tokenFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    } else if (token) {
      value = token;
    } else {
      return {};
    }
    if (value.includes('\r\n')) throw new ProviderError('config', `the container authorization token (${tokenFile ? 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE' : 'AWS_CONTAINER_AUTHORIZATION_TOKEN'}) contains a line break`);
    return { Authorization: value };
  };

  return keptUntilExpiry(async () => {
    const answer = await withOneRetry(async () => requestCapped(SOURCE, url, 'GET', await authorization(), timeoutMs));
    if (answer.status === 200) return parseCredentialsDocument(SOURCE, answer.text);
    // 4xx: the token is missing, wrong or expired, or the task or pod has no role. The answer's
    // Code and Message are not quoted: the endpoint's text may echo the token.
    if (answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
      throw new ProviderError('auth', `${SOURCE} refused to give credentials (HTTP ${answer.status}): check the role and the authorization token`);
    }
    throw new ProviderError(answer.status >= 500 || answer.status === 429 ? 'unavailable' : 'invalid_response', `${SOURCE} failed to give credentials (HTTP ${answer.status})`);
  });
}

/** The URL the SDK would ask, or a config error for one it would refuse. */
function endpointUrl(env: Readonly<Record<string, string>>): URL {
  const relative = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  if (relative) {
    try {
      return new URL(`${ECS_HOST}${relative}`);
    } catch {
      throw new ProviderError('config', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a path');
    }
  }
  let url: URL;
  try {
    url = new URL(env.AWS_CONTAINER_CREDENTIALS_FULL_URI ?? '');
  } catch {
    throw new ProviderError('config', 'AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL');
  }
  if (url.protocol === 'https:') return url;
  const loopback = LOOPBACK_V4.exec(url.hostname);
  if (url.protocol === 'http:' && (LINK_LOCAL_HOSTS.includes(url.hostname) || (loopback && loopback.slice(1).every((n) => Number(n) <= 255)))) return url;
  throw new ProviderError(
    'config',
    `AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address (127.0.0.0/8, [::1]) or the ECS or EKS container host (169.254.170.2, 169.254.170.23, [fd00:ec2::23]); ${url.host} over ${url.protocol.replace(':', '')} is refused, as the AWS SDK refuses it`,
  );
}
