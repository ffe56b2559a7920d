// `auth: { method: default | iam }`: credentials found the way every AWS tool finds them. The SDK
// reads these from its process environment; DSO starts this provider in a Worker or process
// whose environment is exactly the variables config.ts lists, so that is what it sees, and what
// `env` holds for DSO's own readers of the container endpoint and the instance metadata service.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { containerCredentials, hasContainerEndpoint } from './auth_container.ts';
import { instanceMetadataCredentials } from './auth_imds.ts';
import { keptUntilExpiry } from './credential_http.ts';

/** The metadata service and the container endpoint are local: they answer in milliseconds, or not at all (the SDK's 1 s). */
const LOCAL_SERVICE_TIMEOUT_MS = 1000;

type Link = AwsCredentialIdentityProvider;

export interface DefaultChain {
  provider: AwsCredentialIdentityProvider;
  /** The link being asked right now ("the instance metadata service"), for a call that times out. */
  asking(): string | undefined;
}

/**
 * The SDK's default chain (@aws-sdk/credential-provider-node's defaultProvider), link for link and
 * in its order: environment keys (skipped when AWS_PROFILE is set), the shared files' profile,
 * credential_process, the web identity token file, then the machine's role. The first four are
 * the SDK's own; the last is DSO's bounded readers (machineRole), where the SDK's would keep
 * whatever a broken service sends. The SDK's SSO link runs only when a program passes SSO
 * settings in code, which DSO never does: an SSO profile is reached through the profile link.
 */
export async function defaultChain(env: Readonly<Record<string, string>>): Promise<DefaultChain> {
  const { fromEnv, fromIni, fromProcess, fromTokenFile } = await import('@aws-sdk/credential-providers');
  let role: Link | undefined;
  let asking: string | undefined;
  const links: Array<[string, Link]> = [
    [
      'the environment',
      async (properties) => {
        if (env.AWS_PROFILE) throw Object.assign(new Error('AWS_PROFILE is set, skipping the environment keys'), { tryNextLink: true });
        return fromEnv()(properties);
      },
    ],
    ['the profile of the shared files', fromIni()],
    ['credential_process', fromProcess()],
    ['the web identity token file', fromTokenFile()],
    [
      roleSource(env),
      async (properties) => {
        // Built when reached, as the SDK builds its remote provider: a bad endpoint only matters
        // when nothing earlier in the chain had credentials.
        role ??= await machineRole(env, 'the default chain');
        return role(properties);
      },
    ],
  ];
  const provider = keptUntilExpiry(async (properties) => {
    try {
      for (const [name, link] of links) {
        asking = name;
        try {
          return await link(properties);
        } catch (e) {
          // The SDK's rule: a link that has nothing to offer says so with tryNextLink; any other
          // failure (a profile that is there but broken, DSO's readers failing) ends the search.
          if ((e as { tryNextLink?: unknown })?.tryNextLink === true) continue;
          throw e;
        }
      }
    } finally {
      asking = undefined;
    }
    // Unreachable: the last link never asks for a next one.
    throw new ProviderError('auth', 'the default chain found no AWS credentials');
  });
  return { provider, asking: () => asking };
}

/** What the machine's role is read from, for messages. */
export function roleSource(env: Readonly<Record<string, string>>): string {
  return hasContainerEndpoint(env) ? 'the container credentials endpoint' : 'the instance metadata service';
}

/**
 * The role of the machine this runs on: the container credentials endpoint when ECS, EKS Pod
 * Identity or similar set one (see auth_container.ts), else the EC2 instance profile through the
 * instance metadata service (IMDSv2, falling back to v1 unless AWS_EC2_METADATA_V1_DISABLED is
 * set; see auth_imds.ts). Both are DSO's own readers, bounded in time and size.
 */
export async function machineRole(env: Readonly<Record<string, string>>, method: 'iam' | 'the default chain' = 'iam'): Promise<AwsCredentialIdentityProvider> {
  if (hasContainerEndpoint(env)) return containerCredentials({ timeoutMs: LOCAL_SERVICE_TIMEOUT_MS, env });
  const disabled = env.AWS_EC2_METADATA_DISABLED;
  if (disabled && disabled.toLowerCase() !== 'false') {
    if (method === 'iam') throw new ProviderError('config', 'auth method iam: AWS_EC2_METADATA_DISABLED is set and no container credentials endpoint is, so there is no role to use');
    return async (): Promise<AwsCredentialIdentity> => {
      throw new ProviderError(
        'auth',
        'the default chain found no AWS credentials: no keys in the environment, no usable profile, no web identity token file, no container credentials endpoint, and AWS_EC2_METADATA_DISABLED is set',
      );
    };
  }
  return instanceMetadataCredentials({ timeoutMs: LOCAL_SERVICE_TIMEOUT_MS, env });
}
