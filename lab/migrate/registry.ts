import { MigralabError } from '../errors.ts';
import type { StartedLab } from '../provision/provider.ts';
import { QemuDriver } from './qemu/driver.ts';
import type { BootMode, DriverName, MigrationDriver } from './types.ts';

/** Drivers by name: the one place a driver is chosen. */
const factories: Record<DriverName, (lab: StartedLab, progress?: (m: string) => void, opts?: DriverOptions) => MigrationDriver | Promise<MigrationDriver>> = {
  qemu: (lab, progress, opts) => new QemuDriver(lab, { boot: opts?.boot, progress }),
  libvirt: async (lab, progress) => {
    const { LibvirtDriver } = await import('./libvirt/driver.ts');
    return LibvirtDriver.create(lab, progress);
  },
  nova: async (lab, progress) => {
    const { NovaDriver } = await import('./nova/driver.ts');
    return NovaDriver.create(lab, progress);
  },
};

/** How a driver starts its guests; a driver that has only one way ignores it (libvirt boots cold). */
export interface DriverOptions {
  boot?: BootMode;
}

export async function createDriver(name: DriverName, lab: StartedLab, progress?: (m: string) => void, opts: DriverOptions = {}): Promise<MigrationDriver> {
  const f = factories[name];
  if (!f) throw new MigralabError('USAGE', `no migration driver named ${name} (drivers: ${Object.keys(factories).join(', ')})`);
  return f(lab, progress, opts);
}
