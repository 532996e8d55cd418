import { describe, it, expect } from 'vitest';
import { ganeshaConfig, rpcbindArgv } from '../../../lab/nfs/ganesha.ts';

describe('ganesha configuration', () => {
  const conf = ganeshaConfig({ path: '/x/instances', clients: '10.77.0.0/24', bindAddress: '10.77.0.11', versions: [3, 4] });
  it('exports the instances directory by its real path, rw and no_root_squash, to the lab CIDR only', () => {
    expect(conf).toMatch(/Path = \/x\/instances;/);
    expect(conf).toMatch(/Squash = No_Root_Squash;/);
    expect(conf).toMatch(/CLIENT \{\s+Clients = 10\.77\.0\.0\/24;\s+Access_Type = RW;/);
    // default for everyone else: no access
    expect(conf).toMatch(/EXPORT \{[^}]*Access_Type = None;/);
  });
  it('binds to the lab address, TCP only, no NLM', () => {
    expect(conf).toMatch(/Bind_addr = 10\.77\.0\.11;/);
    expect(conf).toMatch(/Enable_UDP = false;/);
    expect(conf).toMatch(/Protocols = 3, 4;/);
  });
  it('caches no attributes (the controller writes the files locally too)', () => {
    expect(conf).toMatch(/Attr_Expiration_Time = 0;/);
  });
  it('caches no directory entries (a directory made again under its old name must resolve to the new one)', () => {
    expect(conf).toMatch(/MDCACHE \{\s+Dir_Chunk = 0;\s+\}/);
  });
});

describe('rpcbind command line', () => {
  it('under systemd-socket-activate: every TCP socket it is handed is the lab address or loopback, then rpcbind itself', () => {
    expect(rpcbindArgv('10.0.0.11', ['10.0.0.11:111', '127.0.0.1:111', '[::1]:111', '/run/rpcbind.sock'])).toEqual([
      'systemd-socket-activate', '-l', '10.0.0.11:111', '-l', '127.0.0.1:111', '-l', '[::1]:111', '-l', '/run/rpcbind.sock',
      'rpcbind', '-f', '-w', '-h', '10.0.0.11',
    ]);
  });
  it('without it: rpcbind alone, its UDP side on the lab address', () => {
    expect(rpcbindArgv('10.0.0.11', undefined)).toEqual(['rpcbind', '-f', '-w', '-h', '10.0.0.11']);
  });
});
