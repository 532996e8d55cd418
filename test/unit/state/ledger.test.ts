import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Ledger } from '../../../lab/state/ledger.ts';
import { processStartTime } from '../../../lab/exec/proc.ts';

describe('state ledger', () => {
  it('persists every record immediately, so another process can replay it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-'));
    try {
      const file = join(dir, 'lab.ledger.json');
      const l = await Ledger.open(file, 'lab');
      await l.record({ kind: 'netns', name: 'a' });
      const slot = await l.record({ kind: 'process', name: 'qemu:x', node: 'n' });
      // written before the process exists: no PID yet
      expect(JSON.parse(readFileSync(file, 'utf8')).resources[1]).toEqual({ kind: 'process', name: 'qemu:x', node: 'n' });
      await l.record({ kind: 'process', name: 'qemu:y', node: 'n' });
      await l.forget((r) => r.kind === 'process' && r.name === 'qemu:y');
      // the handle stays valid when other entries go
      await l.update(slot, { pid: 42, startTime: '7' });
      await l.setStatus('up');
      const again = await Ledger.read(file);
      expect(again).toMatchObject({ lab: 'lab', status: 'up', resources: [{ kind: 'netns', name: 'a' }, { kind: 'process', pid: 42, startTime: '7' }] });
      await l.forget((r) => r.kind === 'process');
      expect((await Ledger.read(file))!.resources).toHaveLength(1);
      await l.remove();
      expect(await Ledger.read(file)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('tells our process from a reused PID by its start time', () => {
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(2 ** 22 + 1)).toBeUndefined();
  });
});
