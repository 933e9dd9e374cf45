import { describePlatformContract } from '../platform-contract.ts';
import { kubernetesUnderTest } from './under-test.ts';

describePlatformContract('kubernetes platform', () => kubernetesUnderTest());
