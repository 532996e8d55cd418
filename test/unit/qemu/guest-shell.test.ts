import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { GuestShell } from '../../../lab/qemu/guest-shell.ts';
import { CONTROL_LOOP } from '../../../lab/image/init.ts';

// The guest's own control loop, run by busybox sh on this host: what the guest's init runs on
// its control tty, with a pipe instead of the tty.
let child: ChildProcess | undefined;

function startLoop(): { shell: Promise<GuestShell>; raw: (text: string) => void } {
  // stderr into stdout in order, as the init's `2>&1 | cat >tty` does
  const p = spawn('busybox', ['sh', '-c', `{ ${CONTROL_LOOP}; } 2>&1`], { stdio: ['pipe', 'pipe', 'inherit'] });
  child = p;
  const stream = Duplex.from({ readable: p.stdout!, writable: p.stdin! });
  return { shell: GuestShell.connect('busybox-loop', { open: async () => stream, timeoutMs: 2000 }), raw: (t) => p.stdin!.write(t) };
}

afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

describe('the guest control shell against the guest\'s own loop', () => {
  it('ignores the tail of a command cut by the drain: later commands still run', async () => {
    const { shell, raw } = startLoop();
    const sh = await shell;
    // What the drain leaves when it ends inside an early probe: a line tail that opens a quote.
    raw(`@@''S1@@'; sh -c 'cat /run/migralab-status' </dev/null 2>&1; echo "@@""E1:$?@@"\n`);
    raw(`' unterminated\n`);
    expect(await sh.exec('echo still here', { timeoutMs: 5000 })).toEqual({ output: 'still here\n', status: 0 });
    sh.close();
  });

  it('runs multi-line commands with quotes, backslashes and escapes unchanged, and keeps exit codes', async () => {
    const { shell } = startLoop();
    const sh = await shell;
    const script = ["a='it''s'", 'for i in 1 2; do', '  echo "$i $a"', 'done', String.raw`printf '%s|%s\n' 'x\y' '\c\n'`, 'exit 7'].join('\n');
    expect(await sh.exec(script, { timeoutMs: 5000 })).toEqual({ output: `1 its\n2 its\nx\\y|\\c\\n\n`, status: 7 });
    expect(await sh.exec("printf '%s' \"$HOME\" | wc -c >/dev/null; echo ok", { timeoutMs: 5000 })).toEqual({ output: 'ok\n', status: 0 });
    sh.close();
  });

  it('survives a line that does not parse', async () => {
    const { shell, raw } = startLoop();
    const sh = await shell;
    raw(`@@X echo 'never closed\n`);
    expect((await sh.exec('echo next', { timeoutMs: 5000 })).output).toBe('next\n');
    sh.close();
  });
});
