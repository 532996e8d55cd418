import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { QmpClient, QmpError, type MigrationInfo, type BlockJobInfo, type StatusInfo, type QmpEvent } from '../../lab/qemu/qmp.ts';

describe('QmpClient against a real QEMU', () => {
  let dir: string;
  let sock: string;
  let qemu: ResultPromise<{ reject: false }>;
  let qmp: QmpClient;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'migralab-qmp-'));
    sock = path.join(dir, 'qmp.sock');
    qemu = execa(
      'qemu-system-x86_64',
      ['-accel', 'tcg', '-M', 'pc', '-m', '64', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`],
      { reject: false },
    );
    // connect right away: the socket does not exist yet, so this exercises the retry
    qmp = await QmpClient.connect(sock, { retryUntilMs: 10_000, timeoutMs: 10_000 });
  }, 20_000);

  afterAll(async () => {
    await qmp?.close();
    if (qemu?.pid !== undefined && qemu.exitCode === null) {
      try {
        process.kill(qemu.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await qemu;
    await rm(dir, { recursive: true, force: true });
  });

  it('read the greeting', () => {
    expect(qmp.greeting?.QMP.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(qmp.isOpen).toBe(true);
  });

  it('query-status: a -S guest is in prelaunch, not running', async () => {
    const st = await qmp.execute<StatusInfo>('query-status');
    expect(st.running).toBe(false);
    expect(st.status).toBe('prelaunch');
  });

  it('query-migrate on a VM that never migrated has no status', async () => {
    const mi = await qmp.execute<MigrationInfo>('query-migrate');
    expect(mi).toEqual({});
    expect(mi.status).toBeUndefined();
  });

  it('query-block-jobs with no jobs', async () => {
    expect(await qmp.execute<BlockJobInfo[]>('query-block-jobs')).toEqual([]);
  });

  it('matches concurrent replies by id', async () => {
    const [a, b, c] = await Promise.all([
      qmp.execute<StatusInfo>('query-status'),
      qmp.execute<{ name?: string }>('query-name'),
      qmp.execute<BlockJobInfo[]>('query-block-jobs'),
    ]);
    expect(a.status).toBe('prelaunch');
    expect(b).toEqual({});
    expect(c).toEqual([]);
  });

  it('turns an error reply into a QmpError with class, desc and command', async () => {
    const err = await qmp.execute('no-such-command', { x: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    const q = err as QmpError;
    expect(q.errorClass).toBe('CommandNotFound');
    expect(q.command).toBe('no-such-command');
    expect(q.desc).toMatch(/no-such-command/);
    expect(q.code).toBe('LAB');
    // and the connection still works afterwards
    expect((await qmp.execute<StatusInfo>('query-status')).status).toBe('prelaunch');
  });

  it('rejects a command with bad arguments with GenericError', async () => {
    const err = await qmp.execute('query-status', { bogus: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).errorClass).toBe('GenericError');
  });

  it('delivers events to listeners and to waitForEvent', async () => {
    const seen: QmpEvent[] = [];
    const listener = (ev: QmpEvent) => seen.push(ev);
    qmp.on('event', listener);

    // QEMU sends RESUME before the reply to cont: look back from a cursor
    const before = qmp.eventCursor();
    await qmp.execute('cont');
    const resume = await qmp.waitForEvent('RESUME', undefined, 5000, { since: before });
    expect(resume.timestamp.seconds).toBeGreaterThan(1_600_000_000);
    expect(resume.timestamp.microseconds).toBeGreaterThanOrEqual(0);
    expect((await qmp.execute<StatusInfo>('query-status')).running).toBe(true);

    // or wait first, then act
    const stopped = qmp.waitForEvent('STOP', () => true, 5000);
    await qmp.execute('stop');
    const stop = await stopped;
    expect(stop.event).toBe('STOP');
    expect(await qmp.execute<StatusInfo>('query-status')).toMatchObject({ running: false, status: 'paused' });

    qmp.off('event', listener);
    expect(seen.map((e) => e.event)).toEqual(['RESUME', 'STOP']);
  });

  it('times out waiting for an event that does not come', async () => {
    await expect(qmp.waitForEvent('SHUTDOWN', undefined, 200)).rejects.toThrow(/SHUTDOWN.*200 ms/);
  });

  it('quit: SHUTDOWN event, closed resolves, QEMU exits, later commands reject', async () => {
    const before = qmp.eventCursor();
    await qmp.execute('quit');
    await qmp.closed;
    expect(qmp.isOpen).toBe(false);
    const shutdown = await qmp.waitForEvent('SHUTDOWN', undefined, 1000, { since: before });
    expect(shutdown.data).toMatchObject({ guest: false, reason: 'host-qmp-quit' });
    const r = await qemu;
    expect(r.exitCode).toBe(0);
    await expect(qmp.execute('query-status')).rejects.toThrow(/closed/);
  }, 15_000);

  it('connect fails clearly when nothing listens', async () => {
    await expect(QmpClient.connect(path.join(dir, 'absent.sock'), { retryUntilMs: 200 })).rejects.toThrow(/cannot connect to .*absent\.sock/);
  });
});

describe('QmpClient framing (a scripted peer on a Unix socket)', () => {
  /** A fake QEMU: greets in two chunks, then answers each line through onLine; every write is its own chunk. */
  async function peer(onLine: (line: string, write: (s: string) => void) => void) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'migralab-qmpfake-'));
    const sock = path.join(dir, 's.sock');
    const server = net.createServer((c) => {
      const write = (s: string) => c.write(s);
      let buf = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, nl), write);
          buf = buf.slice(nl + 1);
        }
      });
      // the greeting split in the middle of a token, and CRLF like QEMU
      write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "pack');
      setTimeout(() => write('age": "x"}, "capabilities": ["oob"]}}\r\n'), 20);
    });
    await new Promise<void>((r) => server.listen(sock, r));
    return {
      sock,
      async [Symbol.asyncDispose]() {
        await new Promise((r) => server.close(r));
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  it('handles partial chunks, several messages per chunk and interleaved events', async () => {
    await using p = await peer((line, write) => {
      const msg = JSON.parse(line) as { execute: string; id: number };
      if (msg.execute === 'qmp_capabilities') return write(`{"return": {}, "id": ${msg.id}}\r\n`);
      if (msg.execute === 'two') {
        // an event, the reply and half of another event in one chunk; the other half later
        write(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "A"}\r\n{"return": {"n": 2}, "id": ${msg.id}}\r\n{"timestamp": {"seconds": 1, "micro`);
        setTimeout(() => write('seconds": 3}, "event": "B", "data": {"k": "é"}}\r\n'), 20);
      }
    });
    await using qmp = await QmpClient.connect(p.sock, { timeoutMs: 2000 });
    expect(qmp.greeting?.QMP.version.package).toBe('x');
    const cursor = qmp.eventCursor();
    expect(await qmp.execute('two')).toEqual({ n: 2 });
    const b = await qmp.waitForEvent('B', undefined, 2000);
    expect(b).toEqual({ timestamp: { seconds: 1, microseconds: 3 }, event: 'B', data: { k: 'é' } });
    expect((await qmp.waitForEvent('A', undefined, 10, { since: cursor })).timestamp.microseconds).toBe(2);
  });

  it('times out a command that gets no reply and rejects pending commands on close', async () => {
    await using p = await peer((line, write) => {
      const msg = JSON.parse(line) as { execute: string; id: number };
      if (msg.execute === 'qmp_capabilities') write(`{"return": {}, "id": ${msg.id}}\n`);
    });
    const qmp = await QmpClient.connect(p.sock, { timeoutMs: 2000 });
    await expect(qmp.execute('silent', undefined, { timeoutMs: 100 })).rejects.toThrow(/silent: no reply within 100 ms/);
    const pending = qmp.execute('silent-too', undefined, { timeoutMs: 5000 });
    await qmp.close();
    await expect(pending).rejects.toThrow(/silent-too.*closed/);
    await qmp.closed;
  });
});
