// `auth: { method: default | iam }`: credentials found the way every AWS tool finds them. The SDK
// reads these from its process environment; DSO starts this provider in a Worker or process
// whose environment is exactly the variables config.ts lists, so that is what it sees.
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { ProviderError } from '../../src/providers/contract.ts';
import { instanceMetadataCredentials } from './auth_imds.ts';

/** The SDK's default chain: environment, profile files, web identity, container, instance role. */
export async function defaultChain(): Promise<AwsCredentialIdentityProvider> {
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  return fromNodeProviderChain();
}

/**
 * The role of the machine this runs on: the container credentials endpoint when ECS, EKS Pod
 * Identity or similar set one, else the EC2 instance profile through the instance metadata
 * service (IMDSv2, falling back to v1 unless AWS_EC2_METADATA_V1_DISABLED is set; see auth_imds.ts).
 */
export async function machineRole(env: Readonly<Record<string, string>>): Promise<AwsCredentialIdentityProvider> {
  const { fromHttp } = await import('@aws-sdk/credential-providers');
  if (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) {
    return fromHttp({
      ...(env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ? { awsContainerCredentialsRelativeUri: env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI } : {}),
      ...(env.AWS_CONTAINER_CREDENTIALS_FULL_URI ? { awsContainerCredentialsFullUri: env.AWS_CONTAINER_CREDENTIALS_FULL_URI } : {}),
      ...(env.AWS_CONTAINER_AUTHORIZATION_TOKEN ? { awsContainerAuthorizationToken: env.AWS_CONTAINER_AUTHORIZATION_TOKEN } : {}),
      ...(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ? { awsContainerAuthorizationTokenFile: env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE } : {}),
    });
  }
  const disabled = env.AWS_EC2_METADATA_DISABLED;
  if (disabled && disabled.toLowerCase() !== 'false') {
    throw new ProviderError('config', 'auth method iam: AWS_EC2_METADATA_DISABLED is set and no container credentials endpoint is, so there is no role to use');
  }
  // The metadata service is local and answers in milliseconds, or not at all (the SDK's 1 s).
  return instanceMetadataCredentials({ timeoutMs: 1000, env });
}
