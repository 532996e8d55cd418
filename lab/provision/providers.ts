import type { Topology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { localProvider } from './local.ts';
import { sshProvider } from './ssh.ts';
import type { Provider } from './provider.ts';

/** The provider a topology names: the one place a provider is chosen. */
export function providerFor(t: Topology): Provider {
  switch (t.provider) {
    case 'local':
      return localProvider;
    case 'ssh':
      return sshProvider;
    default:
      throw new MigralabError('CONFIG', `topology ${t.name}: no provider named ${String(t.provider)}`);
  }
}
