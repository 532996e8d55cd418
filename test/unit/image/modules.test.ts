import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { GUEST_MODULES, moduleName, parseModulesBuiltin, parseModulesDep, resolveModules } from '../../../lab/image/modules.ts';

// Lines as they appear in Debian 12's /lib/modules/6.1.0-*-amd64/modules.dep (plus unrelated ones).
const DEP = `
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/nls/nls_cp437.ko:
kernel/fs/nls/nls_ascii.ko:
kernel/fs/nls/nls_utf8.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
`;

function expectDependencyOrder(order: string[], deps: Map<string, string[]>): void {
  expect(new Set(order).size).toBe(order.length);
  for (const [i, file] of order.entries()) {
    for (const dep of deps.get(file) ?? []) {
      const j = order.indexOf(dep);
      expect(j, `${dep} must come before ${file}`).toBeGreaterThanOrEqual(0);
      expect(j).toBeLessThan(i);
    }
  }
}

describe('modules.dep', () => {
  it('names modules like modprobe does', () => {
    expect(moduleName('kernel/drivers/net/virtio_net.ko')).toBe('virtio_net');
    expect(moduleName('kernel/drivers/usb/storage/usb-storage.ko.xz')).toBe('usb_storage');
    expect(moduleName('kernel/fs/fat/vfat.ko.zst')).toBe('vfat');
  });

  it('parses files and their direct dependencies', () => {
    const deps = parseModulesDep(DEP);
    expect(deps.get('kernel/fs/fat/vfat.ko')).toEqual(['kernel/fs/fat/fat.ko']);
    expect(deps.get('kernel/fs/nls/nls_utf8.ko')).toEqual([]);
    expect(deps.size).toBe(17);
    expect(() => parseModulesDep('no colon here')).toThrow(/malformed/);
  });

  it('resolves the guest modules with dependencies first and no duplicates', () => {
    const deps = parseModulesDep(DEP);
    const order = resolveModules(deps, GUEST_MODULES);
    expect(order.map(moduleName)).toEqual([
      'virtio_ring',
      'virtio',
      'virtio_pci_modern_dev',
      'virtio_pci_legacy_dev',
      'virtio_pci',
      'failover',
      'net_failover',
      'virtio_net',
      'virtio_blk',
      'fat',
      'vfat',
      'nls_cp437',
      'nls_ascii',
      'nls_utf8',
    ]);
    expectDependencyOrder(order, deps);
  });

  it('follows transitive dependencies and accepts dashes or underscores', () => {
    const order = resolveModules(parseModulesDep(DEP), ['usb-storage']).map(moduleName);
    expect(order).toEqual(['usb_common', 'usbcore', 'usb_storage']);
    expect(resolveModules(parseModulesDep(DEP), ['usb_storage', 'usbcore']).map(moduleName)).toEqual(order);
  });

  it('names missing modules, skips built-in ones', () => {
    const deps = parseModulesDep(DEP);
    expect(() => resolveModules(deps, ['virtio_net', 'e1000', 'nope'])).toThrow(/not found in modules.dep: e1000, nope/);
    const builtin = parseModulesBuiltin('kernel/drivers/net/ethernet/intel/e1000/e1000.ko\n');
    expect(resolveModules(deps, ['e1000', 'vfat'], builtin).map(moduleName)).toEqual(['fat', 'vfat']);
  });

  it('reports a dependency cycle instead of looping', () => {
    const deps = parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n');
    expect(() => resolveModules(deps, ['a'])).toThrow(/cycle a -> b -> a/);
  });

  const hostDep = (existsSync('/lib/modules') ? readdirSync('/lib/modules') : [])
    .map((v) => `/lib/modules/${v}/modules.dep`)
    .find((p) => existsSync(p));
  it.skipIf(!hostDep)(`resolves against this host's ${hostDep ?? 'modules.dep'}`, () => {
    const deps = parseModulesDep(readFileSync(hostDep!, 'utf8'));
    const order = resolveModules(deps, GUEST_MODULES);
    expectDependencyOrder(order, deps);
    for (const m of ['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'failover', 'net_failover', 'fat', ...GUEST_MODULES]) {
      expect(order.map(moduleName)).toContain(m);
    }
  });
});
