import { MigralabError } from '../errors.ts';
import type { StartedLab } from '../provision/provider.ts';
import { QemuDriver } from './qemu/driver.ts';
import type { DriverName, MigrationDriver } from './types.ts';

/** Drivers by name: the one place a driver is chosen. */
const factories: Record<DriverName, (lab: StartedLab, progress?: (m: string) => void) => MigrationDriver | Promise<MigrationDriver>> = {
  qemu: (lab) => new QemuDriver(lab),
  libvirt: async (lab, progress) => {
    const { LibvirtDriver } = await import('./libvirt/driver.ts');
    return LibvirtDriver.create(lab, progress);
  },
};

export async function createDriver(name: DriverName, lab: StartedLab, progress?: (m: string) => void): Promise<MigrationDriver> {
  const f = factories[name];
  if (!f) throw new MigralabError('USAGE', `no migration driver named ${name} (drivers: ${Object.keys(factories).join(', ')})`);
  return f(lab, progress);
}

/**
 * Refuses a driver a provider cannot run, before the lab is raised. The libvirt driver sets up
 * each node's libvirtd from the harness's own filesystem (private copies bind-mounted in the
 * node's namespaces): on real hosts over ssh it would need its own plan, apply and revert of
 * libvirtd.conf, which it does not have yet.
 */
export function checkDriverProvider(provider: string, drivers: readonly string[]): void {
  if (provider !== 'local' && drivers.includes('libvirt'))
    throw new MigralabError('PREREQ', `the libvirt driver runs on the local lab only (this topology's provider is ${provider}): on real hosts use the qemu driver (drivers: [qemu], or --driver qemu)`);
}
