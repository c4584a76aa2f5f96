/**
 * Transparent huge pages for guest RAM, as QEMU asks for them (qemu_madvise HUGEPAGE).
 *
 * Fresh memory is mapped on first touch, one fault per 4 KiB page: on the VMs this product
 * was measured on that costs 1-2.5 s per GiB, which a destination pays inside the migration
 * for every page it receives into. With MADV_HUGEPAGE one fault maps 2 MiB, and touching
 * 2 GiB took 0.2 s instead of 4.8-7.4 s. Linux keeps THP in "madvise" mode by default, so
 * the advice must be given, before the first touch, by a syscall Node has no binding for:
 * koffi (FFI, prebuilt in its npm package) calls libc's madvise.
 *
 * Best effort: where koffi or libc is not there (another OS), or the kernel says no, RAM
 * works as before, only slower to fault in; `hugePagesStatus()` says which.
 */
import { createRequire } from 'node:module';

const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 * 1024 * 1024;

type Madvise = (addr: Uint8Array, len: number, advice: number) => number;
interface Ffi {
  madvise: Madvise;
  addressOf(view: Uint8Array): bigint;
  errno(): number;
}

let ffi: Ffi | null | undefined;
let status = 'not tried';

function load(): Ffi | null {
  if (ffi !== undefined) return ffi;
  ffi = null;
  if (process.platform !== 'linux') {
    status = `off: ${process.platform} has no transparent huge pages`;
    return ffi;
  }
  try {
    const koffi = createRequire(import.meta.url)('koffi');
    const libc = koffi.load('libc.so.6');
    const memset = libc.func('void *memset(void *s, int c, size_t n)');
    const madvise = libc.func('int madvise(void *addr, size_t len, int advice)') as Madvise;
    ffi = {
      madvise,
      // memset(p, 0, 0) writes nothing and returns p: the address of the view's first byte.
      addressOf: (view) => koffi.address(memset(view, 0, 0)) as bigint,
      errno: () => koffi.errno() as number,
    };
    status = 'on';
  } catch (err) {
    status = `off: ${(err as Error).message}`;
  }
  return ffi;
}

/**
 * Advises huge pages for the 2 MiB-aligned part of `sab`. Call before anything touches it.
 * Returns the bytes advised (0 when not possible).
 */
export function adviseHugePages(sab: SharedArrayBuffer): number {
  if (sab.byteLength < 2 * HUGE_PAGE) return 0;
  const f = load();
  if (!f) return 0;
  const all = new Uint8Array(sab);
  const addr = f.addressOf(all);
  const huge = BigInt(HUGE_PAGE);
  const skip = Number((huge - (addr % huge)) % huge);
  const len = Math.floor((sab.byteLength - skip) / HUGE_PAGE) * HUGE_PAGE;
  if (len <= 0) return 0;
  if (f.madvise(all.subarray(skip, skip + len), len, MADV_HUGEPAGE) !== 0) {
    status = `off: madvise failed with errno ${f.errno()}`;
    return 0;
  }
  return len;
}

/** 'on', or 'off: why'. */
export function hugePagesStatus(): string {
  load();
  return status;
}
