// The Huawei Cloud fakes other tests can reuse: CSMS behind API Gateway, and the ECS metadata service.
export { startCsmsFake, type CsmsFake, type FakeCredential, type RecordedRequest } from './csms.ts';
export { startMetadataFake, type MetadataFake } from './metadata.ts';
