#!/usr/bin/env python3
"""qcow2edit.py - byte-level edits of qcow2 images for tests/e2e/iotests.sh.

Our own small equivalent of what QEMU's iotests do with `poke_file`,
`peek_file_be` and `qcow2.py` (header field and feature-bit edits, header
extension add/delete), plus the few image builders whose loops would be
slow in shell (hand-written 512-byte-cluster images, huge snapshot tables).
Written for this repository; no code was taken from QEMU.

Usage: qcow2edit.py COMMAND FILE ARGS...
  poke FILE OFFSET HEX            write the bytes HEX (e.g. 80000000 00030000)
  poke-be FILE OFFSET SIZE VALUE  write VALUE big-endian in SIZE bytes
  peek-be FILE OFFSET SIZE        print the big-endian value at OFFSET
  set-header FILE FIELD VALUE     set a header field (names as in the spec)
  set-feature-bit FILE incompatible|compatible|autoclear BIT
  add-header-ext FILE TYPE DATA   append an extension (DATA as text)
  add-header-ext-stdio FILE TYPE  append an extension, data read from stdin
  del-header-ext FILE TYPE        remove every extension of that type
  l1-entry FILE INDEX             print the active L1 entry INDEX
  l2-table FILE INDEX             print the L2 table offset of L1 entry INDEX
  snapshot-offsets FILE           print each snapshot table entry's offset
  snap-extra FILE SIZE,SIZE,... [INDEX:TEXT]
                                  rewrite the snapshot table in place with
                                  each entry's extra data cut or zero-padded
                                  to SIZE bytes; TEXT goes at byte 16 of
                                  entry INDEX's extra data (iotest 261)
  refblock0-allocate FILE START END
                                  set the 16-bit refcount of every cluster in
                                  [START, END) to 1 (refblock 0 only)
  build-044 FILE NREFT            the hand-written 512-byte-cluster image of
                                  iotest 044, NREFT refcount table clusters
  snaptable-big FILE              iotest 261 "Snapshot table too big"
  snaptable-big-extra FILE        iotest 261 "Snapshot table too big with
                                  one entry with too much extra data"
  snaptable-many FILE VERSION     iotest 261 "Too many snapshots" (131072
                                  entries; VERSION 2 all-zero, 3 with extra
                                  data 16)
Values accept 0x prefixes. Every command exits non-zero on a bad argument.
"""
import struct
import sys

FIELDS = [  # name, offset, size (version 2 part, then version 3 part)
    ("magic", 0, 4), ("version", 4, 4), ("backing_file_offset", 8, 8),
    ("backing_file_size", 16, 4), ("cluster_bits", 20, 4), ("size", 24, 8),
    ("crypt_method", 32, 4), ("l1_size", 36, 4), ("l1_table_offset", 40, 8),
    ("refcount_table_offset", 48, 8), ("refcount_table_clusters", 56, 4),
    ("nb_snapshots", 60, 4), ("snapshots_offset", 64, 8),
    ("incompatible_features", 72, 8), ("compatible_features", 80, 8),
    ("autoclear_features", 88, 8), ("refcount_order", 96, 4),
    ("header_length", 100, 4),
]
FEATURE_OFF = {"incompatible": 72, "compatible": 80, "autoclear": 88}


def num(s):
    return int(s, 0)


def peek(f, off, size):
    f.seek(off)
    b = f.read(size)
    if len(b) != size:
        raise SystemExit("peek past the end of the file at %d" % off)
    return int.from_bytes(b, "big")


def poke(f, off, data):
    f.seek(off)
    f.write(data)


def be(value, size):
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "big")


class Header:
    """The header, its extensions and the backing file name, as QEMU's
    qcow2.py sees them: rewritten as header, extensions, end marker and
    backing file name, in that order."""

    def __init__(self, f):
        self.f = f
        f.seek(0)
        self.version = peek(f, 4, 4)
        self.cluster_size = 1 << peek(f, 20, 4)
        self.length = 72 if self.version == 2 else peek(f, 100, 4)
        f.seek(0)
        self.raw = bytearray(f.read(self.length))
        self.exts = []
        off = self.length
        bfo = peek(f, 8, 8)
        end = bfo if 0 < bfo < self.cluster_size else self.cluster_size
        while off + 8 <= end:
            t, n = struct.unpack(">II", self.read(off, 8))
            if t == 0:
                break
            self.exts.append((t, bytes(self.read(off + 8, n))))
            off += 8 + ((n + 7) & ~7)
        bfs = peek(f, 16, 4)
        self.backing = bytes(self.read(bfo, bfs)) if bfo else b""

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def get(self, name):
        for fname, off, size in FIELDS:
            if fname == name:
                return int.from_bytes(self.raw[off:off + size], "big")
        raise SystemExit("unknown header field " + name)

    def set(self, name, value):
        for fname, off, size in FIELDS:
            if fname == name:
                if off + size > len(self.raw):
                    raise SystemExit("field %s is not in a v%d header"
                                     % (name, self.version))
                self.raw[off:off + size] = be(value, size)
                return
        raise SystemExit("unknown header field " + name)

    def write(self):
        out = bytearray(self.raw)
        for t, data in self.exts:
            out += struct.pack(">II", t, len(data)) + data
            out += b"\0" * (((len(data) + 7) & ~7) - len(data))
        out += struct.pack(">II", 0, 0)
        if self.backing:
            out[8:16] = be(len(out), 8)
            out[16:20] = be(len(self.backing), 4)
            out += self.backing
        if len(out) > self.cluster_size:
            raise SystemExit("header and extensions exceed the cluster")
        poke(self.f, 0, bytes(out))


def l1_entry(f, idx):
    return peek(f, peek(f, 40, 8) + 8 * idx, 8)


def snapshot_offsets(f):
    n, off = peek(f, 60, 4), peek(f, 64, 8)
    out = []
    for _ in range(n):
        out.append(off)
        idl, nml = peek(f, off + 12, 2), peek(f, off + 14, 2)
        extra = peek(f, off + 36, 4)
        off += (40 + extra + idl + nml + 7) & ~7
    return out


def refblock0_allocate(f, start, end):
    cs = 1 << peek(f, 20, 4)
    rb = peek(f, peek(f, 48, 8), 8)
    for cl in range(start // cs, (end + cs - 1) // cs):
        if cl >= cs // 2:
            raise SystemExit("cluster %d is outside refblock 0" % cl)
        poke(f, rb + 2 * cl, b"\0\1")


def build_044(f, nreft):
    """512-byte clusters, every cluster of the file referenced exactly once
    and refcounted 1: reftable, refblocks, L1, L2 tables (most of them
    empty), data clusters. QEMU's 044 uses 512 reftable clusters (a 4 GiB
    sparse file); we keep the layout and scale it with nreft."""
    cs = 512
    virtual = peek(f, 24, 8)
    l1_size = (virtual + cs * 64 - 1) // (cs * 64)
    off_reft = 512
    off_rb = off_reft + nreft * cs
    nrb = nreft * 64                    # refblocks: 64 entries per cluster
    off_l1 = off_rb + nrb * cs
    off_l2 = off_l1 + (l1_size * 8 + cs - 1) // cs * cs
    off_data = off_l2 + l1_size * cs
    file_size = nrb * 256 * cs          # 256 refcounts per refblock
    if off_data >= file_size:
        raise SystemExit("build-044: nreft %d is too small" % nreft)
    h = Header(f)
    h.set("refcount_table_offset", off_reft)
    h.set("refcount_table_clusters", nreft)
    h.set("l1_table_offset", off_l1)
    h.set("l1_size", l1_size)
    h.write()
    poke(f, off_reft, b"".join(be(off_rb + i * cs, 8) for i in range(nrb)))
    poke(f, off_rb, struct.pack(">H", 1) * (nrb * 256))
    poke(f, off_l1, b"".join(be((1 << 63) | (off_l2 + cs * j), 8)
                             for j in range(l1_size)))
    ndata = (file_size - off_data) // cs
    poke(f, off_l2, b"".join(be((1 << 63) | (off_data + cs * j), 8)
                             for j in range(ndata)))
    f.truncate(file_size)


def snaptable_big(f):
    """iotest 261: entries of 40 + 1024 + 65535 + 65535 (+2 padding) bytes
    at 1 MiB until the table passes 64 MiB; the last one has an L1 table
    (one entry, at 0xe0000) with an empty L2 table (0xf0000)."""
    sn_size = 40 + 1024 + 65535 + 65535 + 2
    fixed = bytearray(40)
    fixed[12:14] = b"\xff\xff"
    fixed[14:16] = b"\xff\xff"
    fixed[36:40] = be(1024, 4)
    off, written, count = 1 << 20, 0, 0
    poke(f, 64, be(off, 8))
    while written <= 64 << 20:
        poke(f, off, bytes(fixed))
        off += sn_size
        written += sn_size
        count += 1
    f.truncate(off)
    last = off - sn_size
    poke(f, last, be(0xe0000, 8))
    poke(f, last + 8, be(1, 4))
    poke(f, 0xe0000, be((1 << 63) | 0xf0000, 8))
    refblock0_allocate(f, 0xe0000, off)
    poke(f, 60, be(count, 4))


def snap_extra(f, sizes, text):
    n, start = peek(f, 60, 4), peek(f, 64, 8)
    offs = snapshot_offsets(f)
    out = bytearray()
    for i, off in enumerate(offs):
        f.seek(off)
        fixed = bytearray(f.read(40))
        idl, nml = peek(f, off + 12, 2), peek(f, off + 14, 2)
        extra = peek(f, off + 36, 4)
        ex = bytearray(f.read(extra))
        names = f.read(idl + nml)
        size = sizes[i]
        ex = (ex + bytes(max(0, size - len(ex))))[:size]
        if text and text[0] == i:
            ex[16:16 + len(text[1])] = text[1]
        fixed[36:40] = be(size, 4)
        entry = bytes(fixed) + bytes(ex) + names
        out += entry + bytes(((len(entry) + 7) & ~7) - len(entry))
    if len(out) > (1 << peek(f, 20, 4)):
        raise SystemExit("snap-extra: the table outgrows its cluster")
    poke(f, start, bytes(out))
    assert n == len(offs)


def snaptable_big_extra(f):
    """505 entries as in snaptable-big, then one whose extra data makes the
    entry after it end 8 bytes past 64 MiB, then two more."""
    sn_size = 40 + 1024 + 65535 + 65535 + 2
    fixed = bytearray(40)
    fixed[12:14] = b"\xff\xff"
    fixed[14:16] = b"\xff\xff"
    fixed[36:40] = be(1024, 4)
    off = 1 << 20
    poke(f, 64, be(off, 8))
    for _ in range(505):
        poke(f, off, bytes(fixed))
        off += sn_size
    extra = (64 << 20) + 8 - sn_size - (506 * sn_size - 1024)
    big = bytearray(fixed)
    big[36:40] = be(extra, 4)
    poke(f, off, bytes(big))
    off += sn_size - 1024 + extra
    for _ in range(2):
        poke(f, off, bytes(fixed))
        off += sn_size
    f.truncate(off)
    refblock0_allocate(f, 1 << 20, off)
    poke(f, 60, be(508, 4))


def snaptable_many(f, version):
    """iotest 261 "Too many snapshots": 131072 entries at 1 MiB; entry
    65536 has an L1 table (0xe0000, one entry) with an L2 table at
    0xf0000. Version 2 entries are 40 zero bytes (valid in v2); version 3
    entries carry the 16 bytes of extra data v3 requires."""
    n = 131072
    esz = 40 if version == 2 else 56
    entry = bytearray(esz)
    if version == 3:
        entry[36:40] = be(16, 4)
    poke(f, 64, be(1 << 20, 8))
    poke(f, 60, be(n, 4))
    poke(f, 1 << 20, bytes(entry) * n)
    victim = (1 << 20) + esz * 65536
    poke(f, victim, be(0xe0000, 8))
    poke(f, victim + 8, be(1, 4))
    poke(f, 0xe0000, be((1 << 63) | 0xf0000, 8))
    refblock0_allocate(f, 0xe0000, (1 << 20) + esz * n)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    cmd, path, args = argv[1], argv[2], argv[3:]
    with open(path, "r+b") as f:
        if cmd == "poke":
            poke(f, num(args[0]), bytes.fromhex("".join(args[1:])))
        elif cmd == "poke-be":
            poke(f, num(args[0]), be(num(args[2]), num(args[1])))
        elif cmd == "peek-be":
            print(peek(f, num(args[0]), num(args[1])))
        elif cmd == "set-header":
            h = Header(f)
            h.set(args[0], num(args[1]))
            h.write()
        elif cmd == "set-feature-bit":
            h = Header(f)
            name = args[0] + "_features"
            h.set(name, h.get(name) | 1 << num(args[1]))
            h.write()
        elif cmd in ("add-header-ext", "add-header-ext-stdio"):
            h = Header(f)
            data = (args[1].encode() if cmd == "add-header-ext"
                    else sys.stdin.buffer.read())
            h.exts.append((num(args[0]), data))
            h.write()
        elif cmd == "del-header-ext":
            h = Header(f)
            h.exts = [e for e in h.exts if e[0] != num(args[0])]
            h.write()
        elif cmd == "l1-entry":
            print(l1_entry(f, num(args[0])))
        elif cmd == "l2-table":
            print(l1_entry(f, num(args[0])) & 0x00fffffffffffe00)
        elif cmd == "snapshot-offsets":
            print(" ".join(str(o) for o in snapshot_offsets(f)))
        elif cmd == "snap-extra":
            text = None
            if len(args) > 1:
                i, t = args[1].split(":", 1)
                text = (int(i), t.encode())
            snap_extra(f, [num(x) for x in args[0].split(",")], text)
        elif cmd == "snaptable-big-extra":
            snaptable_big_extra(f)
        elif cmd == "refblock0-allocate":
            refblock0_allocate(f, num(args[0]), num(args[1]))
        elif cmd == "build-044":
            build_044(f, num(args[0]))
        elif cmd == "snaptable-big":
            snaptable_big(f)
        elif cmd == "snaptable-many":
            snaptable_many(f, num(args[0]))
        else:
            raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
