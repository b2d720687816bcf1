// The machine a bench ran on, named the same way in every script's table header and JSON: a figure
// means nothing without it (and a peer's figure only beside ours from the same machine and run).
import { cpus, loadavg } from 'node:os';

/** The CPU's model, its logical cores, the 1-minute load average and Node's version. */
export function machine() {
  const list = cpus();
  return { cpu: list[0]?.model ?? 'unknown', cores: list.length, load1: loadavg()[0], node: process.version };
}

/** "MODEL x CORES, load average L" for a table's header. */
export function machineLine(m = machine()) {
  return `${m.cpu} x ${m.cores}, load average ${m.load1.toFixed(2)}`;
}
