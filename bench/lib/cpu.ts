import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU accounting from Linux /proc: the PostgreSQL server's processes (backends, WAL writer,
 * checkpointer, ...) and the whole machine. Only meaningful when PostgreSQL runs on this machine;
 * approximate (10 ms ticks, and a process that exits between two readings takes its time with it).
 */

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(out.stdout?.trim());
    ticksPerSecond = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

export type CpuSnapshot = Map<string, number>;

/** CPU ticks of every process named "postgres", by pid, or undefined where /proc is not readable. */
export function postgresCpuSnapshot(): CpuSnapshot | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const snapshot: CpuSnapshot = new Map();
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
    // After "pid (comm) ", field 3 (state) is index 0; utime (14) and stime (15) are indexes 11 and 12.
    const fields = stat.slice(close + 2).split(' ');
    snapshot.set(pid, Number(fields[11]) + Number(fields[12]));
  }
  return snapshot.size > 0 ? snapshot : undefined;
}

/**
 * CPU milliseconds the postgres processes used between two snapshots. Compared per process: idle pool
 * connections that close in between (and take their totals with them) must not make the sum shrink.
 */
export function postgresCpuMsBetween(before: CpuSnapshot, after: CpuSnapshot): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += Math.max(0, t - (before.get(pid) ?? 0));
  return (ticks / clockTicks()) * 1000;
}

/** Whether a database URL points at this machine (so its server's processes are visible here). */
export function isLocalDatabase(url: string): boolean {
  const host = new URL(url).hostname;
  return host === '' || host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
}

export interface MachineCpu {
  /** CPU milliseconds spent running anything (user, nice, system, irq, softirq) over all cores. */
  busyMs: number;
  /** CPU milliseconds the hypervisor gave to other guests while this one wanted to run. */
  stealMs: number;
}

/** The machine's CPU counters since boot (the "cpu" line of /proc/stat), or undefined elsewhere. */
export function machineCpu(): MachineCpu | undefined {
  let line: string | undefined;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  } catch {
    return undefined;
  }
  if (!line?.startsWith('cpu ')) return undefined;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const ms = (ticks: number | undefined) => ((ticks ?? 0) / clockTicks()) * 1000;
  return { busyMs: ms((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)), stealMs: ms(steal) };
}
