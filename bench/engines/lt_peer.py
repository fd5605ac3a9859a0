#!/usr/bin/python3
"""libtorrent runner for the Shoal benchmarks (JSON-lines protocol, see bench/README.md).

Run with /usr/bin/python3: Debian's python3-libtorrent is built for that interpreter.
--profile tuned  : high_performance_seed() plus loopback tuning (large send buffer, deep request queue)
--profile default: libtorrent's defaults (only discovery turned off); it does better in shaped swarms
--tracker URL    : announce to that tracker (a seed from the start, a downloader from the start signal on)
"""
import argparse
import json
import os
import select
import sys
import time

import libtorrent as lt


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def settings(args):
    s = lt.high_performance_seed() if args.profile == "tuned" else lt.default_settings()
    s.update({
        "listen_interfaces": "%s:%d" % (args.host, args.port),
        # Inside namespaces the source address must be our own, or peers see a duplicate address.
        "outgoing_interfaces": args.host if not args.host.startswith("127.") else "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "user_agent": "shoal-bench",
    })
    if args.profile == "tuned":
        s.update({
            # Loopback has ~0 RTT and huge bandwidth: keep many requests and bytes in flight.
            "send_buffer_watermark": 64 * 1024 * 1024,
            "send_buffer_low_watermark": 8 * 1024 * 1024,
            "send_buffer_watermark_factor": 200,
            "max_queued_disk_bytes": 64 * 1024 * 1024,
            "request_queue_time": 5,
            "max_out_request_queue": 4000,
            "max_allowed_in_request_queue": 8000,
            "whole_pieces_threshold": 5,
            "aio_threads": 4,
            "hashing_threads": 2,
            "send_socket_buffer_size": 4 * 1024 * 1024,
            "recv_socket_buffer_size": 4 * 1024 * 1024,
            "connections_limit": 500,
            "unchoke_slots_limit": -1,
        })
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["seed", "leech"], required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--profile", choices=["tuned", "default"], default="tuned")
    ap.add_argument("--strategy", default=None)
    ap.add_argument("--tracker", default=None)
    args = ap.parse_args()

    ses = lt.session(settings(args))
    ti = lt.torrent_info(args.torrent)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = args.dir
    # A downloader's announces wait for the start signal, or it would find the seed before the clock starts.
    atp.trackers = [args.tracker] if args.tracker and args.role == "seed" else []
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)

    port = ses.listen_port()
    ready = False
    done = False
    joined = False
    t_start = time.time()
    buf = b""
    while True:
        st = h.status()
        if not ready:
            # A seed is ready once its existing data is verified; a downloader once its files are checked.
            if st.state in (lt.torrent_status.seeding, lt.torrent_status.finished) or (
                args.role == "leech" and st.state == lt.torrent_status.downloading
            ):
                if args.role == "seed" and not st.is_seeding:
                    emit({"event": "error", "message": "seed data failed verification (%d of %d pieces)" % (st.num_pieces, ti.num_pieces())})
                    return 1
                ready = True
                emit({"event": "ready", "port": port, "checkSeconds": time.time() - t_start})
            elif st.errc.value() != 0:
                emit({"event": "error", "message": st.errc.message()})
                return 1
        elif args.role == "leech" and not done and st.is_seeding:
            done = True
            emit({"event": "done", "downloaded": st.total_payload_download})

        r, _, _ = select.select([0], [], [], 0.05)
        cmds = []
        if r:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    cmds.append(json.loads(line))
                except ValueError:
                    pass
        quit_ = False
        for cmd in cmds:
            c = cmd.get("cmd")
            if c == "peers":
                if args.tracker and args.role == "leech" and not joined:
                    joined = True
                    h.add_tracker({"url": args.tracker, "tier": 0})
                    h.force_reannounce()
                for u in cmd.get("webSeeds", []):
                    h.add_url_seed(u)  # BEP 19 web seed, given at the start signal so no download starts early
                for p in cmd.get("peers", []):
                    h.connect_peer((p["host"], int(p["port"])))
            elif c == "stats":
                st = h.status()
                emit({"event": "stats", "uploaded": st.total_payload_upload, "downloaded": st.total_payload_download,
                      "peers": st.num_peers, "progress": st.progress})
            elif c == "quit":
                quit_ = True
        if quit_:
            break
        for a in ses.pop_alerts():
            if isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                emit({"event": "error", "message": a.message()})
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
