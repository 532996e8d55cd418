import { describe, it, expect } from 'vitest';
import { buildArgvPrefix, parseMadison, parseQemuVersion, pickDebianVersions, qemuBuildSchema, versionAtLeast } from '../../../lab/qemu/builds.ts';
import { knownIssues } from '../../../lab/provision/environment.ts';

const madison = `qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
qemu-system-common | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
qemu-system-common | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages
qemu-system-data | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
qemu-system-data | 1:7.2+dfsg-7+deb12u18 | http://deb.debian.org/debian bookworm/main amd64 Packages
qemu-block-extra | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages
   seabios | 1.16.3-2~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
   seabios |   1.16.2-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
 ipxe-qemu | 1.0.0+git-20190125.36a4c85-5.1 | http://deb.debian.org/debian bookworm/main amd64 Packages
`;

describe('QEMU builds', () => {
  it('picks one suite\'s packages for debian-<version>, firmware of the same suite', () => {
    const p = pickDebianVersions(parseMadison(madison), '7.2');
    expect(p).toEqual({
      suite: 'bookworm',
      versions: {
        'qemu-system-x86': '1:7.2+dfsg-7+deb12u18+b3',
        'qemu-system-common': '1:7.2+dfsg-7+deb12u18+b3',
        'qemu-system-data': '1:7.2+dfsg-7+deb12u18',
        'qemu-block-extra': '1:7.2+dfsg-7+deb12u18+b3',
        seabios: '1.16.2-1',
        'ipxe-qemu': '1.0.0+git-20190125.36a4c85-5.1',
      },
    });
    expect(pickDebianVersions(parseMadison(madison), '8.1')).toBeUndefined();
  });

  it('starts a build with its own firmware and module directories', () => {
    expect(buildArgvPrefix({ binary: '/c/usr/bin/qemu-system-x86_64', firmwareDirs: ['/c/fw1', '/c/fw2'], moduleDir: '/c/mod' })).toEqual([
      'env', 'QEMU_MODULE_DIR=/c/mod', '/c/usr/bin/qemu-system-x86_64', '-L', '/c/fw1', '-L', '/c/fw2',
    ]);
    expect(buildArgvPrefix({ binary: 'qemu-system-x86_64', firmwareDirs: [] })).toEqual(['qemu-system-x86_64']);
  });

  it('reads versions', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)')).toBe('7.2.22');
    expect(versionAtLeast('10.0.2', 9)).toBe(true);
    expect(versionAtLeast('7.2.22', 9)).toBe(false);
  });

  it('accepts system, debian-<version>, a path, or binary + firmware, and nothing else', () => {
    for (const ok of ['system', 'debian-7.2', '/opt/qemu/bin/qemu-system-x86_64', { binary: '/q', firmware: '/fw' }]) expect(qemuBuildSchema.safeParse(ok).success, JSON.stringify(ok)).toBe(true);
    for (const bad of ['debian', 'qemu-7.2', 'relative/path', { binary: 'q' }, 7]) expect(qemuBuildSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
  });

  it('knows the TCG lost-writes issue of QEMU before 9.0, and only under TCG', () => {
    expect(knownIssues({ qemuVersion: '7.2.22', accelerator: 'tcg' }).map((i) => i.id)).toEqual(['qemu-tcg-lost-writes']);
    expect(knownIssues({ qemuVersion: '7.2.22', accelerator: 'tcg' })[0]!.reference).toMatch(/03bfc2188f06/);
    expect(knownIssues({ qemuVersion: '7.2.22', accelerator: 'kvm' })).toEqual([]);
    expect(knownIssues({ qemuVersion: '9.0.0', accelerator: 'tcg' })).toEqual([]);
    expect(knownIssues({ qemuVersion: '10.0.2', accelerator: 'tcg' })).toEqual([]);
  });
});
