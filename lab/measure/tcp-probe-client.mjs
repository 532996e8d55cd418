// The TCP probe's client, run by lab/measure/tcp-probe.ts on the observer (inside its network
// namespace): one connection to HOST:PORT kept open, a numbered line sent every INTERVAL ms,
// each echoed line timed. Prints "connected" once, then on SIGTERM (or when the connection
// ends) one JSON line with what it saw. Plain Node, no dependencies.
import net from 'node:net';

const [host, port, intervalArg] = process.argv.slice(2);
const intervalMs = Number(intervalArg);
const sentAt = new Map();
let sent = 0;
let received = 0;
let lastEcho;
let longestStallMs = 0;
let stallStart = null;
let maxRttMs = 0;
let closed = null;
let buf = '';
const t0 = performance.now();
const sock = net.connect({ host, port: Number(port) });
sock.setNoDelay(true);
let timer;
const done = (why) => {
  clearInterval(timer);
  const now = performance.now();
  // a stall still open at the end counts up to now
  if (lastEcho !== undefined) longestStallMs = Math.max(longestStallMs, now - lastEcho);
  process.stdout.write(`${JSON.stringify({ sent, received, longestStallMs: received ? longestStallMs : null, longestStallStartMs: stallStart, maxRttMs: received ? maxRttMs : null, durationMs: now - t0, survived: closed === null, closed, ended: why })}\n`);
  sock.destroy();
  process.exit(0);
};
sock.on('connect', () => {
  process.stdout.write('connected\n');
  timer = setInterval(() => {
    const n = ++sent;
    sentAt.set(n, performance.now());
    sock.write(`${n}\n`);
  }, intervalMs);
});
sock.on('data', (b) => {
  buf += b.toString('latin1');
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const n = Number(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    const now = performance.now();
    const at = sentAt.get(n);
    if (at === undefined) continue;
    sentAt.delete(n);
    received++;
    maxRttMs = Math.max(maxRttMs, now - at);
    if (lastEcho !== undefined && now - lastEcho > longestStallMs) {
      longestStallMs = now - lastEcho;
      stallStart = lastEcho - t0;
    }
    lastEcho = now;
  }
});
sock.on('error', (e) => (closed = `error: ${e.message}`));
sock.on('close', () => {
  closed ??= 'closed by the peer';
  done('connection');
});
process.on('SIGTERM', () => done('stopped'));
