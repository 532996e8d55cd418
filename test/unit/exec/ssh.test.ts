import { describe, it, expect } from 'vitest';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { fingerprint, knownKeys, shellJoin, verifyHostKey } from '../../../lab/exec/ssh.ts';

const key = (n: number) => Buffer.from(`ssh-ed25519-key-${n}`.padEnd(51, '.'));

describe('the ssh transport, pure parts', () => {
  it('quotes argv once for the remote shell, so no argument is split or expanded', () => {
    expect(shellJoin(['echo', 'a b', "it's", '$HOME', '*', 'plain/path-1.2'])).toBe(`echo 'a b' 'it'\\''s' '$HOME' '*' plain/path-1.2`);
    expect(shellJoin([''])).toBe("''");
  });

  it('prints fingerprints as ssh-keygen -l does', () => {
    const pub = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
    expect(fingerprint(pub)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('finds a host\'s keys in known_hosts, plain, with a port, and hashed', () => {
    const salt = Buffer.from('0123456789abcdef0123');
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('10.0.0.9').digest('base64')}`;
    const text = [
      '# comment',
      `10.0.0.1,ctl ssh-ed25519 ${key(1).toString('base64')}`,
      `[10.0.0.2]:2222 ssh-ed25519 ${key(2).toString('base64')}`,
      `${hashed} ssh-ed25519 ${key(9).toString('base64')}`,
    ].join('\n');
    expect(knownKeys(text, '10.0.0.1', 22)).toEqual([key(1)]);
    expect(knownKeys(text, 'ctl', 22)).toEqual([key(1)]);
    expect(knownKeys(text, '10.0.0.2', 2222)).toEqual([key(2)]);
    expect(knownKeys(text, '10.0.0.2', 22)).toEqual([]);
    expect(knownKeys(text, '10.0.0.9', 22)).toEqual([key(9)]);
  });

  it('refuses an unknown or changed host key, naming the host and both fingerprints', () => {
    const t = { name: 'controller', host: '10.0.0.1', port: 22, knownHosts: '/k' };
    const text = `10.0.0.1 ssh-ed25519 ${key(1).toString('base64')}\n`;
    expect(verifyHostKey(t, key(1), text)).toEqual({ ok: true });
    const changed = verifyHostKey(t, key(2), text);
    expect(changed.ok).toBe(false);
    if (!changed.ok) {
      expect(changed.message).toContain('host key of controller (10.0.0.1:22) changed');
      expect(changed.message).toContain(fingerprint(key(1)));
      expect(changed.message).toContain(fingerprint(key(2)));
    }
    const unknown = verifyHostKey({ ...t, host: '10.0.0.7' }, key(2), text);
    expect(!unknown.ok && unknown.message).toMatch(/is unknown: \/k has no entry/);
    expect(verifyHostKey({ name: 'c', host: 'h', port: 22, hostKey: fingerprint(key(3)) }, key(3))).toEqual({ ok: true });
    expect(verifyHostKey({ name: 'c', host: 'h', port: 22, hostKey: fingerprint(key(3)) }, key(4)).ok).toBe(false);
    expect(verifyHostKey({ name: 'c', host: 'h', port: 22 }, key(4)).ok).toBe(false);
  });
});
