#!/usr/bin/python3
"""A libtorrent session that finds peers by Local Service Discovery only (BEP 14), for Shoal's LSD interop test.

  lt_lsd.py --listen IP:PORT --info-hash HEX --save DIR [--announce-interval S] [--broadcast]

Adds the torrent by info-hash alone (a magnet without trackers: no metadata, so libtorrent announces it on LSD
and connects to every LSD peer to fetch the metadata). DHT, UPnP, NAT-PMP and uTP are off.
Prints JSON lines: {"event":"listening","port":N}, then {"event":"alert",...} for peer, connect and error
alerts, {"event":"status","peers":N} every 250 ms. EOF on stdin makes it exit.
"""
import argparse
import json
import sys
import threading
import time

import libtorrent as lt


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--info-hash", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--announce-interval", type=int, default=2)
    ap.add_argument("--broadcast", action="store_true")
    args = ap.parse_args()
    listen_ip = args.listen.rpartition(":")[0].strip("[]")

    ses = lt.session({
        "enable_lsd": True,
        # Multicast only, unless asked: the test is about the BEP 14 group, not subnet broadcast.
        "broadcast_lsd": args.broadcast,
        # Default 300 s. Not needed (libtorrent announces as the torrent starts), but if that first datagram
        # were lost, a short interval repeats it within the test's time.
        "local_service_announce_interval": args.announce_interval,
        "enable_dht": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "listen_interfaces": args.listen,
        "outgoing_interfaces": listen_ip,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
                          | lt.alert.category_t.peer_notification | lt.alert.category_t.connect_notification),
        "user_agent": "lt_lsd/" + lt.__version__,
    })
    params = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + args.info_hash)
    params.save_path = args.save
    handle = ses.add_torrent(params)

    deadline = time.time() + 10
    while ses.listen_port() == 0 and time.time() < deadline:
        ses.wait_for_alert(100)
        ses.pop_alerts()
    emit({"event": "listening", "port": ses.listen_port()})

    stop = threading.Event()

    def read_stdin():
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    last_status = 0.0
    while not stop.is_set():
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            emit({"event": "alert", "type": a.what(), "msg": a.message()})
        now = time.time()
        if now - last_status >= 0.25:
            last_status = now
            emit({"event": "status", "peers": handle.status().num_peers})
    ses.pause()
    emit({"event": "exit"})


if __name__ == "__main__":
    main()
