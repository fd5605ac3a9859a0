#!/usr/bin/env python3
# Splits one thread's `perf` samples by who owns the code they were taken in, for comparing engines' profiles
# (bench/PROFILE.md, seventh session). Each sample goes to the nearest JavaScript frame on its stack: the runner's
# or engine's own code, or Node's own JavaScript (`node:` frames: streams, net, fs, timers); a sample with no
# JavaScript frame goes to what it is (kernel, libc's system-call stubs, Node/libuv C++, V8). SHA-1 and memcpy are
# counted apart wherever they are called from: every engine hashes and copies the same bytes, so
# "samples per SHA-1 sample" compares two profiles per byte moved.
#
# Usage: the process must run with `--perf-basic-prof` (SHOAL_BENCH_FIRST_NODE_FLAGS, bench/README.md), then
#   perf record -g -F 999 -p PID -o out.data -- sleep 25
#   perf script -i out.data | python3 bench/tools/perf-by-owner.py PID
# (PID is also the main thread's id.) Note: optimized code that inlined our functions into Node's (or the reverse)
# is charged to the outer frame, so the own/Node split is approximate; the totals per byte are not.
import collections
import re
import sys

if len(sys.argv) != 2:
    sys.exit('usage: perf script -i FILE | perf-by-owner.py MAIN_THREAD_ID')
tid = sys.argv[1]
cat = collections.Counter()
total = 0
current = None
stack = []


def flush():
    global total
    if current != tid or not stack:
        return
    total += 1
    self_sym, module = stack[0]
    if 'sha1' in self_sym:
        cat['SHA-1'] += 1
        return
    if 'memmove' in self_sym or 'memcpy' in self_sym:
        cat['memcpy (block copies)'] += 1
        return
    js = [s for s, _ in stack if s.startswith('JS:')]
    where = 'kernel' if module.startswith('[kernel') else 'user'
    if js:
        owner = "Node's JavaScript" if 'node:' in js[0] else 'own JavaScript'
        cat[f'{owner} ({where})'] += 1
    elif where == 'kernel':
        cat['no JavaScript frame: kernel'] += 1
    elif 'libc' in module:
        cat['no JavaScript frame: libc (system-call stubs, epoll)'] += 1
    elif self_sym.startswith(('uv_', 'uv__', 'node::')):
        cat['no JavaScript frame: Node and libuv C++'] += 1
    else:
        cat['no JavaScript frame: V8 and other'] += 1


for line in sys.stdin:
    if not line.strip():
        flush()
        current, stack = None, []
        continue
    if not line.startswith(('\t', ' ')):
        fields = line.split()
        current = fields[1] if len(fields) > 1 else None
        stack = []
        continue
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        continue
    sym, _, module = parts[1].rpartition(' (')
    stack.append((re.sub(r'\+0x[0-9a-f]+$', '', sym), module))
flush()

if total == 0:
    sys.exit(f'no samples for thread {tid}')
sha1 = cat['SHA-1'] or 1
print(f'thread {tid}: {total} samples, {total / sha1:.2f} per SHA-1 sample')
for k, c in sorted(cat.items(), key=lambda kv: -kv[1]):
    print(f'{100 * c / total:6.2f}%  {c:6d}  {c / sha1:6.2f} per SHA-1 sample  {k}')
