// `auth: { method: sso }`: role credentials from the IAM Identity Center portal for the token
// `aws sso login` cached, found through a profile of the shared AWS files. The SDK reads the
// profile and the token cache and asks the portal (GetRoleCredentials); DSO gives its SSO client
// an HTTP handler that reads the portal's answer within a size limit (the SDK's own keeps
// whatever comes, so an endless answer would fill the memory DSO shares with its Worker), and says
// what was wrong with a broken answer instead of the SDK's parse error, which names none.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpHandlerOptions, HttpRequest, HttpResponse, RequestHandler } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { isConnectionError } from '../../src/providers/http-status.ts';
import { BodyOverLimit, readBodyCapped } from '../../src/providers/read-body.ts';
import { sharedFiles } from './auth_profile.ts';
import type { AwsAuthConfig } from './config.ts';
import { ANSWER_LIMIT } from './credential_http.ts';

type SsoAuth = Extract<AwsAuthConfig, { method: 'sso' }>;

interface PortalHandler extends RequestHandler<HttpRequest, HttpResponse, HttpHandlerOptions> {
  /** What the last request to the portal showed to be wrong, if anything. */
  problem: ProviderError | undefined;
}

export async function ssoCredentials(auth: SsoAuth, env: Readonly<Record<string, string>>): Promise<AwsCredentialIdentityProvider> {
  const { fromSSO } = await import('@aws-sdk/credential-providers');
  const portal = `the SSO portal (SSO profile ${auth.profile})`;
  const handler = portalHandler(portal);
  // The SSO token cache (~/.aws/sso/cache) is found by the SDK from HOME in this Worker's or
  // process's environment, which DSO sets to the provider's own.
  const fromPortal = fromSSO({ profile: auth.profile, ...sharedFiles(auth, env), clientConfig: { requestHandler: handler } });
  return async (properties) => {
    handler.problem = undefined;
    let got: AwsCredentialIdentity;
    try {
      got = await fromPortal(properties);
    } catch (e) {
      throw handler.problem ?? e;
    }
    // The SDK hands on whatever the portal put in roleCredentials, as long as it is there.
    const { accessKeyId, secretAccessKey, sessionToken, expiration } = got;
    if (typeof accessKeyId !== 'string' || accessKeyId === '' || typeof secretAccessKey !== 'string' || secretAccessKey === '' || typeof sessionToken !== 'string' || !(expiration instanceof Date) || Number.isNaN(expiration.getTime())) {
      throw new ProviderError('invalid_response', `${portal} answered something that is not AWS credentials`);
    }
    return got;
  };
}

/** The SSO client's HTTP handler: fetch, the answer read within ANSWER_LIMIT, a broken one recorded. */
function portalHandler(portal: string): PortalHandler {
  const handler: PortalHandler = {
    problem: undefined,
    async handle(request, options) {
      const url = new URL(`${request.protocol}//${request.hostname}${request.port ? `:${request.port}` : ''}${request.path}`);
      for (const [k, v] of Object.entries(request.query ?? {})) for (const one of [v ?? []].flat()) url.searchParams.append(k, one);
      let response: Response;
      try {
        response = await fetch(url, { method: request.method, headers: request.headers, body: request.body as RequestInit['body'], redirect: 'manual', ...(options?.abortSignal ? { signal: options.abortSignal as AbortSignal } : {}) });
      } catch (e) {
        // Thrown on as it came: the SDK retries a refused or reset connection once more.
        const code = (e as { code?: unknown })?.code;
        handler.problem = new ProviderError('unavailable', `cannot reach ${portal} for credentials (${typeof code === 'string' && isConnectionError(e) ? code : 'the request failed'})`);
        throw e;
      }
      let body: Uint8Array;
      try {
        body = await readBodyCapped(response, ANSWER_LIMIT);
      } catch (e) {
        handler.problem =
          e instanceof BodyOverLimit
            ? new ProviderError('invalid_response', `${portal} answered more than credentials ever take (over ${ANSWER_LIMIT} bytes)`)
            : new ProviderError('unavailable', `${portal} cut its answer off`);
        throw handler.problem;
      }
      const type = response.headers.get('content-type') ?? '';
      if (response.status >= 500 || response.status === 429) {
        // Given to the SDK, whose retry policy knows these; if it still fails, this is what is said.
        handler.problem = new ProviderError('unavailable', `${portal} failed (HTTP ${response.status}) while DSO asked it for credentials`);
      } else if (response.status < 300 && !(/\bjson\b/i.test(type) && parses(body))) {
        body.fill(0);
        handler.problem = new ProviderError('invalid_response', `${portal} answered HTTP ${response.status} with something that is not AWS credentials`);
        throw handler.problem;
      } else {
        handler.problem = undefined;
      }
      const headers: Record<string, string> = {};
      response.headers.forEach((value, key) => {
        headers[key] = value;
      });
      return { response: { statusCode: response.status, reason: response.statusText, headers, body } };
    },
  };
  return handler;
}

function parses(body: Uint8Array): boolean {
  try {
    JSON.parse(new TextDecoder().decode(body));
    return true;
  } catch {
    return false;
  }
}
