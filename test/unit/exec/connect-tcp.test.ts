import { it, expect } from 'vitest';
import net from 'node:net';
import { LocalNode } from '../../../lab/exec/local.ts';

it('connectTcp is a stream to host:port through a relay process, and a refused connection keeps its code (the guest shell retries on it)', async () => {
  const srv = net.createServer((c) => {
    c.write('hi\n');
    c.on('data', (d) => c.write(d));
  }).listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const port = (srv.address() as net.AddressInfo).port;
  const n = new LocalNode('host', '');
  const d = await n.connectTcp('127.0.0.1', port);
  const got = await new Promise<string>((r) => {
    let b = '';
    d.on('data', (x) => {
      b += x;
      if (b.includes('yo')) r(b);
    });
    d.write('yo\n');
  });
  expect(got).toBe('hi\nyo\n');
  d.destroy();
  srv.close();
  const e = (await n.connectTcp('127.0.0.1', 1).catch((x: unknown) => x)) as NodeJS.ErrnoException;
  expect(e.code).toBe('ECONNREFUSED');
  expect(e.message).toMatch(/^127\.0\.0\.1:1 on host: .*ECONNREFUSED/);
});
