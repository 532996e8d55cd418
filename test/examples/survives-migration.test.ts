/**
 * The library's example: does a service in the guest survive a live migration? A tiny TCP
 * echo service (a script copied into the guest, busybox nc), one connection from the
 * observer kept open and sent a line every 5 ms, a block and a shared migration; the
 * connection must survive, and its longest stall stay within what the migration's own
 * interruption allows. From another project the import is `from 'migralab'`.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startLab, MigralabError } from '../../lab/api.ts';

/** Linux's minimum TCP retransmission timeout: a segment lost in the switchover is resent after it at the earliest. */
const TCP_RTO_MIN_MS = 200;

describe('a TCP service in the guest survives live migration', () => {
  it('block and shared: the connection stays open, its longest stall bounded by the measured interruption', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlexample-'));
    try {
      const echo = join(dir, 'echo.sh');
      writeFileSync(echo, '#!/bin/sh\n# a persistent echo service on port 7000\nexec nc -ll -p 7000 -e /bin/cat\n');
      await using lab = await startLab({ topology: 'test/fixtures/test.lab.yaml' });
      // errors are the typed ones the CLI maps to exit codes
      await expect(lab.boot({ on: 'compute7' })).rejects.toSatisfy((e) => e instanceof MigralabError && e.code === 'USAGE' && /has no compute node compute7/.test(e.message));
      await expect(lab.boot({ memory: 'lots' })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/memory: expected a size like 128MiB, got "lots"/) });
      for (const strategy of ['block', 'shared'] as const) {
        const vm = await lab.boot({ strategy });
        await vm.copyIn(echo, '/tmp/echo.sh', { mode: 0o755 });
        expect((await vm.exec('/tmp/echo.sh >/dev/null 2>&1 &')).status).toBe(0);
        // copyOut gives back what copyIn put there
        await vm.copyOut('/tmp/echo.sh', join(dir, `back-${strategy}.sh`));
        expect(readFileSync(join(dir, `back-${strategy}.sh`), 'utf8')).toBe(readFileSync(echo, 'utf8'));
        const from = vm.node;
        const tcp = await lab.tcpProbe(vm, { port: 7000, intervalMs: 5 });
        // an observer of the test's own, beside the one migrate runs
        const ping = lab.ping(vm, { intervalMs: 10 });
        // a guest migrates the way it was booted for
        await expect(lab.migrate(vm, { strategy: strategy === 'block' ? 'shared' : 'block' })).rejects.toMatchObject({ code: 'USAGE' });
        const r = await lab.migrate(vm, { strategy, driver: 'qemu' });
        const t = await tcp.stop();
        const p = await ping.stop();
        expect(p.summary.received).toBeGreaterThan(10);
        expect(p.summary.maxGapMs).toBeGreaterThan(0);
        expect(r.ok, r.error ?? '').toBe(true);
        expect(r.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
        expect(vm.node).not.toBe(from);
        expect(t.survived, t.closed ?? '').toBe(true);
        expect(t.received).toBeGreaterThan(t.sent / 2);
        // The guest was unreachable for at most the largest ping gap; a segment lost in that
        // window comes back after TCP's retransmission timeout, doubled per retry (two here).
        const bound = r.ping.maxGapMs! + 3 * TCP_RTO_MIN_MS;
        expect(t.longestStallMs, `longest stall ${t.longestStallMs} ms, ping gap ${r.ping.maxGapMs} ms`).toBeLessThan(bound);
        console.log(`${strategy}: migration ${r.durationMs?.toFixed(1)} ms, ping gap ${r.ping.maxGapMs?.toFixed(1)} ms, TCP longest stall ${t.longestStallMs?.toFixed(1)} ms over ${t.sent} lines`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
