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
