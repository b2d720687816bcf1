// The addon's large host buffers (core/host_memory.cpp): from 1 MiB up each is a mapping of its own,
// given back whole when freed; from one huge page up that mapping starts on a huge-page boundary and
// is advised for huge pages ("hg" in its VmFlags), with nothing left mapped around it. Read from
// /proc/self/smaps (Linux). Sanitizer builds take malloc's memory for every size (ASan checks it).
import { describe, expect, it } from 'vitest';
import { testingAddon } from './helpers/testing-addon.mjs';

interface Mapping {
  mapped: boolean;
  hugePageBytes: number;
  offset: number;
  pageOffset: number;
  vmaStart: number;
  vmaEnd: number;
  flags: string;
  unmappedAfterFree: boolean;
  vmGrowthBytes: number;
}
const addon = testingAddon<{ hostMapping(bytes: number, cycles?: number): Mapping; sanitizerLeakCheck?: () => boolean }>();
const sanitized = typeof addon.sanitizerLeakCheck === 'function';
const MiB = 2 ** 20;
const page = 4096;
const pageRounded = (n: number): number => Math.ceil(Math.ceil(n / 64) * 64 / page) * page;

describe.skipIf(process.platform !== 'linux')('host buffers', () => {
  it.skipIf(sanitized)('from one huge page up: a mapping of exactly the buffer, on a huge-page boundary, advised for huge pages', () => {
    const huge = addon.hostMapping(MiB).hugePageBytes;
    for (const bytes of [huge || 2 * MiB, 3 * (huge || 2 * MiB) + 12345, 300 * MiB + 1]) {
      const m = addon.hostMapping(bytes);
      expect({ bytes, mapped: m.mapped, start: m.vmaStart, end: m.vmaEnd, freed: m.unmappedAfterFree }).toEqual({
        bytes,
        mapped: true,
        start: 0,
        end: pageRounded(bytes),
        freed: true,
      });
      if (huge === 0) continue; // a kernel without transparent huge pages: a plain mapping
      expect([bytes, m.offset]).toEqual([bytes, 0]);
      expect(m.flags.split(' ')).toContain('hg');
    }
  });

  it.skipIf(sanitized)('the extra huge page mapped for the alignment is given back: 200 allocations leave no address space behind', () => {
    const huge = addon.hostMapping(MiB).hugePageBytes || 2 * MiB;
    const m = addon.hostMapping(3 * huge + 12345, 200);
    // a head or tail left mapped would add up to a huge page each time (200 of them: up to 400 MiB)
    expect(m.vmGrowthBytes).toBeLessThan(16 * MiB);
  });

  it.skipIf(sanitized)('from 1 MiB to one huge page: a page-aligned mapping without the advice, given back when freed', () => {
    // its mapping may merge with a neighbour of the same flags: its ends are not checked
    const m = addon.hostMapping(1.5 * MiB, 200);
    expect([m.pageOffset, m.unmappedAfterFree]).toEqual([0, true]);
    expect(m.flags.split(' ')).not.toContain('hg');
    expect(m.vmGrowthBytes).toBeLessThan(16 * MiB);
  });

  it.runIf(sanitized)('a sanitizer build takes every size from malloc', () => {
    for (const bytes of [1000, 1.5 * MiB, 8 * MiB]) expect([bytes, addon.hostMapping(bytes).mapped]).toEqual([bytes, false]);
  });
});
