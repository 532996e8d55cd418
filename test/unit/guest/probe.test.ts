import { describe, expect, it } from 'vitest';
import { MigralabError } from '../../../lab/errors.ts';
import { nsToEpochMs, offsetFromSamples, parsePauseProbeStatus, type ClockSample } from '../../../lab/guest/probe.ts';
import {
  finalStatus,
  guestFiles,
  mlloadArgv,
  parseLoadStatus,
  parseStatusFields,
  splitStopOutput,
  workloadReport,
  type GuestProcess,
} from '../../../lab/guest/workload.ts';

const MiB = 1024 * 1024;

/** Lines as mlload and mlprobe wrote them (real runs). */
const memFinal =
  'state=final pid=1143 mode=mem targetMiBs=20.000000 bytes=45928448 seconds=2.190635 rateMiBs=19.994562 backlogDrops=0 droppedBytes=0 workingSetBytes=33554432\n';
const diskFinal =
  'state=final pid=1165 mode=disk targetMiBs=5.000000 bytes=10747904 seconds=2.050620 rateMiBs=4.998488 backlogDrops=0 droppedBytes=0 device=/dev/vda offsetBytes=8388608 sizeBytes=16777216\n';
const probeFinal =
  'state=final pid=1144 periodUs=1000 rounds=2006 elapsedUs=2204056 expectedRounds=2204 maxGapUs=3563 maxGapStartRealtimeNs=1795803644507957291 maxGapEndRealtimeNs=1795803644511520715 maxRealtimeGapUs=3563 startRealtimeNs=1795803643942270684 lastRealtimeNs=1795803646146327123\n';

const proc: GuestProcess = { pid: 1143, program: 'mlload', statusFile: '/run/mlload-ab-mem.status', logFile: '/run/mlload-ab-mem.log' };

describe('status lines', () => {
  it('parseStatusFields takes the last non-empty line as key=value fields', () => {
    expect(parseStatusFields('state=running a=1\nstate=final a=2 b=x=y\n\n')).toEqual({ state: 'final', a: '2', b: 'x=y' });
  });

  it('parseStatusFields rejects text that is not key=value', () => {
    expect(() => parseStatusFields('')).toThrow(MigralabError);
    expect(() => parseStatusFields('mlload: open /dev/vda: No such file')).toThrow(/not key=value/);
  });

  it('parseLoadStatus reads mlload memory and disk lines', () => {
    expect(parseLoadStatus(memFinal)).toEqual({
      state: 'final',
      pid: 1143,
      mode: 'mem',
      targetMiBs: 20,
      bytes: 45928448,
      seconds: 2.190635,
      rateMiBs: 19.994562,
      backlogDrops: 0,
      droppedBytes: 0,
      workingSetBytes: 32 * MiB,
    });
    expect(parseLoadStatus(diskFinal)).toMatchObject({ mode: 'disk', bytes: 10747904, rateMiBs: 4.998488 });
    expect(parseLoadStatus(diskFinal).workingSetBytes).toBeUndefined();
  });

  it('parseLoadStatus names a missing or non-numeric field', () => {
    expect(() => parseLoadStatus('state=final pid=1 mode=mem targetMiBs=1 seconds=1 rateMiBs=1 backlogDrops=0 droppedBytes=0')).toThrow(/field bytes missing/);
    expect(() => parseLoadStatus(memFinal.replace('bytes=45928448', 'bytes=lots'))).toThrow(/field bytes not a number/);
    expect(() => parseLoadStatus(memFinal.replace('mode=mem', 'mode=cpu'))).toThrow(/bad mode/);
  });

  it('workloadReport turns final lines into bytes, seconds and achieved rates', () => {
    expect(workloadReport({ memory: memFinal, disk: diskFinal })).toEqual({
      memory: { bytesDirtied: 45928448, workingSetBytes: 32 * MiB, targetMiBs: 20, seconds: 2.190635, rateMiBs: 19.994562, backlogDrops: 0, droppedBytes: 0 },
      disk: { bytesWritten: 10747904, targetMiBs: 5, seconds: 2.05062, rateMiBs: 4.998488, backlogDrops: 0, droppedBytes: 0 },
    });
    expect(workloadReport({})).toEqual({});
  });

  it('parsePauseProbeStatus converts ns beyond 2^53 to epoch ms without losing the microseconds', () => {
    const r = parsePauseProbeStatus(probeFinal);
    expect(r).toEqual({
      state: 'final',
      pid: 1144,
      maxGapMs: 3.563,
      maxGapStart: 1795803644507.957,
      maxGapEnd: 1795803644511.52,
      maxRealtimeGapMs: 3.563,
      rounds: 2006,
      expectedRounds: 2204,
      periodUs: 1000,
      elapsedMs: 2204.056,
      start: 1795803643942.27,
      end: 1795803646146.327,
    });
    // the gap's realtime ends are the gap itself, to the microsecond
    expect(r.maxGapEnd - r.maxGapStart).toBeCloseTo(r.maxGapMs, 2);
  });

  it('nsToEpochMs rejects what is not an integer', () => {
    expect(nsToEpochMs('1000000')).toBe(1);
    expect(() => nsToEpochMs('1.5e18')).toThrow(MigralabError);
  });
});

describe('stopping guest programs', () => {
  it('splitStopOutput separates each program’s status and log, also when a log has no final newline', () => {
    const out = `@@status 0\n${memFinal}@@log 0\n@@status 1\n${diskFinal}@@log 1\nmlload: something@@end\n`;
    expect(splitStopOutput(out, 2)).toEqual([
      { status: memFinal.trim(), log: '' },
      { status: diskFinal.trim(), log: 'mlload: something' },
    ]);
    expect(splitStopOutput('@@status 0\n@@log 0\n@@end\n', 1)).toEqual([{ status: '', log: '' }]);
  });

  it('finalStatus accepts only a final line and otherwise says what happened', () => {
    expect(finalStatus(proc, { status: memFinal.trim(), log: '' })).toBe(memFinal.trim());
    expect(() => finalStatus(proc, { status: '', log: 'mlload: mmap: Cannot allocate memory' })).toThrow(/no status in \/run\/mlload-ab-mem.status; its log: mlload: mmap/);
    expect(() => finalStatus(proc, { status: memFinal.replace('state=final', 'state=error'), log: 'mlload: write /dev/vda: EIO' })).toThrow(/failed in the guest/);
    expect(() => finalStatus(proc, { status: memFinal.replace('state=final', 'state=running'), log: '' })).toThrow(/did not write a final status/);
  });
});

describe('mlload command lines', () => {
  it('memory: rate and working set in MiB, as plain decimals', () => {
    const { statusFile } = guestFiles('mlload', 'ab', 'mem');
    expect(statusFile).toBe('/run/mlload-ab-mem.status');
    expect(mlloadArgv('memory', { memory: { rateMiBs: 20, workingSetBytes: 32 * MiB } }, statusFile)).toEqual(['mlload', '-o', statusFile, 'mem', '20', '32']);
    expect(mlloadArgv('memory', { memory: { rateMiBs: 0.5, workingSetBytes: 1.5 * MiB } }, 'f')).toEqual(['mlload', '-o', 'f', 'mem', '0.5', '1.5']);
  });

  it('disk: device, offset and size; 4 KiB alignment is required', () => {
    expect(mlloadArgv('disk', { disk: { rateMiBs: 5, offsetMiB: 8, sizeMiB: 16 } }, 'f', '/dev/vdb')).toEqual(['mlload', '-o', 'f', 'disk', '5', '/dev/vdb', '8', '16']);
    expect(() => mlloadArgv('disk', { disk: { rateMiBs: 5, offsetMiB: 0.001, sizeMiB: 16 } }, 'f')).toThrow(/multiples of 4 KiB/);
    expect(() => mlloadArgv('disk', { disk: { rateMiBs: 5, offsetMiB: 0, sizeMiB: 0 } }, 'f')).toThrow(/multiples of 4 KiB/);
  });

  it('rejects rates that are not positive and working sets below one page', () => {
    expect(() => mlloadArgv('memory', { memory: { rateMiBs: 0, workingSetBytes: MiB } }, 'f')).toThrow(/positive rate/);
    expect(() => mlloadArgv('disk', { disk: { rateMiBs: NaN, offsetMiB: 0, sizeMiB: 1 } }, 'f')).toThrow(/positive rate/);
    expect(() => mlloadArgv('memory', { memory: { rateMiBs: 1, workingSetBytes: 100 } }, 'f')).toThrow(/at least 4096 bytes/);
  });
});

describe('clock offset arithmetic', () => {
  it('uses the sample with the shortest round trip: offset = host midpoint - guest, uncertainty = half the round trip', () => {
    const samples: ClockSample[] = [
      { hostBeforeMs: 1000, guestMs: 700, hostAfterMs: 1040 },
      { hostBeforeMs: 1100, guestMs: 799.5, hostAfterMs: 1110 },
      { hostBeforeMs: 1200, guestMs: 880, hostAfterMs: 1300 },
    ];
    expect(offsetFromSamples(samples)).toEqual({ offsetMs: 305.5, uncertaintyMs: 5 });
  });

  it('a guest whose clock stood still for 500 ms shows an offset 500 ms larger afterwards', () => {
    const before = offsetFromSamples([{ hostBeforeMs: 10_000, guestMs: 9_680, hostAfterMs: 10_010 }]);
    // 2 s of host time later, of which the guest saw only 1.5 s
    const after = offsetFromSamples([{ hostBeforeMs: 12_000, guestMs: 11_180, hostAfterMs: 12_012 }]);
    expect(after.offsetMs - before.offsetMs).toBe(501);
    expect(before.uncertaintyMs + after.uncertaintyMs).toBe(11);
  });

  it('rejects no samples and a host clock that went backwards', () => {
    expect(() => offsetFromSamples([])).toThrow(/no samples/);
    expect(() => offsetFromSamples([{ hostBeforeMs: 10, guestMs: 5, hostAfterMs: 9 }])).toThrow(/backwards/);
  });
});
