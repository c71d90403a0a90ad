#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the hand-made seeds of fuzz/corpus/api/ (python3 fuzz/seeds.py).

Each seed is a short scenario in fuzz-api's input language (see the op
decoders in fuzz/api.c): the fuzzer mutates from there. Regenerating is
only needed when that language changes.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# op codes (op % 20 in LLVMFuzzerTestOneInput)
OPEN, GET, CLOSE, SYNC, INSERT = range(5)      # 5 is insert too
REMOVE, ARM, RBEGIN, RRETRY, INVAL, INV_START, INV_END, FAULT, FAULT_LOCK, \
    MEM, HB, RC_CREATE, RC_GET = range(6, 19)
RC_PUT, RC_DESTROY, RC_STATS, ALLOC_FAIL, FORK = 19, 39, 59, 79, 99

# kinds (enum kind)
ANON_RW, ANON_RO, ANON_NONE, SHM_RW, SHM_RO, FILE_PRIV = 1, 2, 3, 4, 5, 6
# events
UNMAP, CLEAR, REMAP, PROTECTION = 1, 2, 3, 4


def b(*xs):
    return bytes(xs)


def idx(i, mod, bits=0, mask=0xf8):
    """A byte v with v % mod == i and (v & mask) == bits."""
    for v in range(256):
        if v % mod == i and (v & mask) == bits:
            return v
    raise ValueError((i, mod, bits))


def open_mm(i, monitored=True):
    return b(OPEN, idx(i, 3, 0 if monitored else 0x10))


def close_mm(i):
    return b(CLOSE, i)


def rng(page, npages):
    """gen_range(): arena page (-2.., as given), n pages, aligned."""
    return b(2, page + 2, npages)       # kind byte 2: even, < 190


def rng_unaligned(page, npages, off, extra):
    return b(3, page + 2, npages, off) + struct.pack('<H', extra)


def rng_hostile(start_sel, len_sel, s_extra=b'', l_extra=b''):
    """gen_range()'s hostile starts (k % 12) and lengths (% 10)."""
    return b(204 + start_sel) + s_extra + b(len_sel) + l_extra


def insert(mm, r, mode=0):
    return b(INSERT, mode & 7, mm) + r


def remove(slot):
    return b(REMOVE, slot)


def mmap(page, n, kind, reported=False):
    assert 1 <= n <= 3
    # op_mem: k (k % 8 == 0: mmap), gen_pages: p, n-1; then the kind byte
    return b(MEM, 0x80 if reported else 0, page, n - 1, kind - 1)


def munmap(page, n, reported=False):
    return b(MEM, 2 | (0x80 if reported else 0), page, n - 1)


def dontneed(page, n, reported=False):
    return b(MEM, 3 | (0x80 if reported else 0), page, n - 1)


def mremap(src, dst, reported=False):
    return b(MEM, 4 | (0x80 if reported else 0), src, 0, dst)


def mprotect(page, n, to):
    return b(MEM, 5, page, n - 1, to)


def touch(page, n):
    return b(MEM, 6, page, n - 1)


def read_begin(slot, k=0):
    return b(RBEGIN, k, slot)


def read_retry(slot):
    return b(RRETRY, 0, slot)


def hb(slot, how, page_sel=0, extra=0):
    """how: 0 munmap, 1 MADV_DONTNEED, 2 MAP_FIXED (extra: kind - 1),
    3 mremap (extra: the destination page)."""
    return b(HB, how, slot, page_sel) + (b(extra) if how >= 2 else b())


def inval(mm, r, event=UNMAP):
    return b(INVAL, mm) + r + b(3 + event)   # gen_event: e % 16 >= 3


def inv_start(win, mm, r, event=UNMAP, blockable=True):
    return (b(INV_START, idx(win, 3, 0x10 if blockable else 0), mm) + r
            + b(3 + event))


def inv_end(win, mm=0):
    return b(INV_END, win, mm)


REQ_NONE, REQ_FAULT, REQ_WRITE_FAULT = 0, 1, 2


def fault(slot, npages, k=0x25, page_off=0, reqs=(), lock=False):
    """op_range_fault: k bit0 from the notifier's start, (k >> 1) & 7 >= 2
    well formed, 0x20 per-page requests, 0x10 a default request, 0x80
    PFNs. The notifier must have a seq (read_begin first)."""
    out = b(FAULT_LOCK if lock else FAULT, k, slot, npages - 1)
    if not (k & 1):
        out += b(page_off + 1)
    out += b(0)                          # no extra pages
    out += bytes(reqs) + b(0) * (npages - len(reqs))
    if k & 0x10:
        out += b(REQ_FAULT)
    return out + b(0)                    # flags byte != 0xff


def rc_create(c, mm, max_regions=0, max_pages=0):
    # op_rc_create, then op_rc_stats's own byte
    return b(RC_CREATE, c, mm, max_regions, max_pages, c)


def rc_get(c, r, access=1):
    return b(RC_GET, c, access - 1) + r + b(0)


def rc_put(c, h=0):
    return b(RC_PUT, c, h)


def rc_destroy(c):
    return b(RC_DESTROY, c)


SEEDS = {
    # A monitored mm hears munmap, MADV_DONTNEED, mremap, MAP_FIXED.
    'events': open_mm(0) + mmap(0, 3, ANON_RW) + mmap(3, 1, SHM_RW)
    + touch(0, 3)
    + insert(0, rng(0, 4)) + read_begin(0) + munmap(1, 1) + read_begin(0)
    + read_retry(0) + hb(0, 1, 0) + hb(0, 3, 2, 9) + hb(0, 2, 3, 3)
    + hb(0, 0, 2),
    # Every kind of mapping under a notifier, armed and faulted.
    'kinds': open_mm(0) + b''.join(mmap(p, 1, k) for p, k in
                                   ((0, ANON_RW), (1, ANON_RO), (2, ANON_NONE),
                                    (3, SHM_RW), (5, FILE_PRIV)))
    + insert(0, rng(0, 8)) + b(ARM, 0) + read_begin(0) + fault(0, 8)
    + fault(0, 4, reqs=(REQ_FAULT, REQ_WRITE_FAULT)) + mmap(6, 1, SHM_RO)
    + b(ARM, 0) + read_begin(0) + fault(0, 8, k=0xa5) + fault(0, 8, lock=True)
    + fault(0, 3, reqs=(REQ_FAULT, REQ_FAULT, REQ_FAULT)),
    # Windows without monitor: exact callbacks, nested windows, deferral.
    'windows': open_mm(1, False) + insert(1, rng(0, 4))
    + insert(1, rng(2, 4), mode=1) + inv_start(0, 1, rng(1, 2))
    + insert(1, rng(3, 1)) + read_begin(2, 1) + inv_start(1, 1, rng(3, 2),
                                                         blockable=False)
    + remove(2) + inv_end(0, 1) + inv_end(1, 1) + read_begin(0)
    + inval(1, rng(0, 16)) + read_retry(0),
    # Callbacks that call back into uhmm.
    'nested': open_mm(1, False) + open_mm(0) + insert(1, rng(0, 4), mode=4)
    + inval(1, rng(0, 1)) + b(0, 0)               # remove: -EDEADLK
    + inval(1, rng(0, 1)) + b(1, 1)               # close: -EDEADLK
    + inval(1, rng(0, 1)) + b(2, 0)               # sync: -EDEADLK
    + inval(1, rng(0, 1)) + b(3, 0) + b(1) + rng(0, 2) + b(4)  # nested window
    + inval(1, rng(1, 1)) + b(4, 0) + b(0, 1) + rng(5, 1)      # insert
    + inv_start(0, 1, rng(0, 1)) + b(4, 0) + b(0, 1) + rng(1, 1)
    + read_begin(1, 0) + inv_end(0, 1) + read_begin(1, 0),
    # Closing with notifiers still inserted: RELEASE, then -ESRCH.
    'release': open_mm(1, False) + insert(1, rng(0, 2)) + insert(1, rng(1, 2))
    + b(GET, 1) + close_mm(1) + close_mm(1) + insert(1, rng(0, 1))
    + inval(1, rng(0, 1)) + b(SYNC, 1) + close_mm(1) + remove(0) + remove(1),
    # A registration cache on a monitored mm: hits, misses, staleness.
    'rcache': open_mm(0) + mmap(0, 3, ANON_RW) + mmap(3, 3, ANON_RW)
    + rc_create(0, 0, 2, 3)
    + rc_get(0, rng(0, 2)) + rc_get(0, rng(0, 1)) + rc_put(0) + rc_put(0)
    + rc_get(0, rng(2, 2), 3) + munmap(2, 1) + rc_get(0, rng(2, 2), 3)
    + mmap(2, 1, ANON_RW) + rc_get(0, rng(2, 2), 3) + dontneed(0, 1)
    + rc_get(0, rng(0, 2)) + rc_get(0, rng(4, 2)) + rc_put(0, 1)
    + rc_destroy(0) + rc_put(0, 0) + rc_destroy(0),
    # The same without monitor: changes reported by the caller.
    'rcache-explicit': open_mm(1, False) + mmap(0, 3, ANON_RW)
    + rc_create(0, 1, 1, 0) + rc_get(0, rng(0, 2)) + rc_put(0)
    + munmap(0, 1, True) + rc_get(0, rng(0, 2)) + rc_get(0, rng(1, 3))
    + inval(1, rng(1, 1)) + rc_put(0) + rc_put(0, 1) + rc_destroy(0),
    # fork(): PROTECTION windows in the parent; -ECHILD and one RELEASE in
    # the child, also for an mm released before.
    'fork': open_mm(0) + open_mm(1, False) + mmap(0, 3, ANON_RW)
    + mmap(3, 1, SHM_RW) + insert(0, rng(0, 4)) + insert(1, rng(1, 2))
    + insert(0, rng(2, 1)) + read_begin(0) + rc_create(0, 0)
    + rc_get(0, rng(0, 1)) + b(FORK, 0x5f) + read_retry(0) + close_mm(0)
    + b(FORK, 0x5f) + fault(0, 2),
    # Allocation failures in the next op.
    'alloc-fail': b(ALLOC_FAIL, 0) + open_mm(0) + open_mm(1, False)
    + b(ALLOC_FAIL, 0) + rc_create(0, 1) + rc_create(0, 1) + b(ALLOC_FAIL, 0)
    + rc_get(0, rng(0, 1)) + insert(1, rng(0, 2)) + read_begin(0)
    + b(ALLOC_FAIL, 0) + fault(0, 2, k=0x25, reqs=(1, 1)),
    # Hostile ranges: the whole address space, the top, the vdso.
    'hostile': open_mm(1, False) + open_mm(0)
    + insert(1, rng_hostile(0, 2)) + insert(1, rng_hostile(4, 3))
    + insert(0, rng_hostile(2, 7)) + insert(0, rng_hostile(5, 1))
    + insert(1, rng_hostile(6, 4, b'\x10')) + inval(1, rng_hostile(0, 2))
    + insert(0, rng_hostile(9, 8, l_extra=b'\x01'))
    + read_begin(2) + fault(2, 2) + read_begin(0) + fault(0, 3, k=0x35),
}


def main():
    out = os.path.join(HERE, 'corpus', 'api')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
