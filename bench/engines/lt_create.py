#!/usr/bin/python3
"""Makes a .torrent with libtorrent (create_torrent + set_piece_hashes), for the create scenario."""
import os
import sys

import libtorrent as lt


def main():
    path, piece, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
