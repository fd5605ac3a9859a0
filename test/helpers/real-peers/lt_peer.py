#!/usr/bin/python3
"""A libtorrent peer for Shoal's interop tests, driven by libtorrent.ts.

  lt_peer.py run --mode seed|download (--torrent T | --magnet URI) --save DIR [--listen IP:PORT]
                 [--outgoing IP] [--peer IP:PORT ...] [--exit-when-done]
                 [--lsd [--lsd-interval S]] [--upload-limit B/s] [--download-limit B/s]
                 [--dht-bootstrap IP:PORT ... [--dht-announce-interval S]]
  lt_peer.py make --path P --out T [--piece-length N] [--announce URL ...]

`run` prints one JSON object per line on stdout: first {"event":"listening","port":N}, then
{"event":"status",...} every 250 ms, {"event":"done"} once the data is complete and verified,
{"event":"alert",...} for errors and peer events, {"event":"metadata","infoHash":H} when a magnet's metadata
arrived (from a peer, over ut_metadata). --magnet adds the torrent by magnet URI (x.pe peers are used);
--lsd turns on Local Service Discovery (BEP 14, multicast only). --dht-bootstrap turns on the DHT (BEP 5, off
otherwise) bootstrapped only from these nodes; the torrent is then announced and looked up every
--dht-announce-interval seconds (default 2; libtorrent's own default is 15 min) and status lines carry "dhtNodes". ut_pex is on, as in libtorrent's default session. --upload-limit/--download-limit
also apply to loopback and LAN peers (libtorrent exempts them by default). Lines on stdin are JSON commands
({"cmd":"connect","host":H,"port":P}); EOF on stdin makes it exit, so a dead parent never leaves it behind.
"""
import argparse
import json
import os
import sys
import threading
import time

import libtorrent as lt


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]"), int(port))


def make(args):
    fs = lt.file_storage()
    lt.add_files(fs, os.path.abspath(args.path))
    if fs.num_files() == 0:
        sys.exit("no files under " + args.path)
    ct = lt.create_torrent(fs, args.piece_length)
    for tier, url in enumerate(args.announce or []):
        ct.add_tracker(url, tier)
    ct.set_creator("shoal-interop lt_peer.py")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.path)))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    emit({"event": "made", "infoHash": str(lt.torrent_info(args.out).info_hash())})


STATES = {}
for _name in ("checking_files", "downloading_metadata", "downloading", "finished", "seeding",
              "checking_resume_data", "allocating"):
    if hasattr(lt.torrent_status.states, _name):
        STATES[int(getattr(lt.torrent_status.states, _name))] = _name


def run(args):
    settings = lt.high_performance_seed()
    settings.update({
        "enable_dht": False,
        "enable_lsd": bool(args.lsd),
        "enable_upnp": False,
        "enable_natpmp": False,
        # Shoal speaks TCP only; libtorrent would otherwise try uTP first.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "listen_interfaces": args.listen,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
                          | lt.alert.category_t.peer_notification | lt.alert.category_t.tracker_notification
                          | lt.alert.category_t.connect_notification),
        # Peers in these tests share one IP (loopback) with the tracker and other clients.
        "allow_multiple_connections_per_ip": True,
        "user_agent": "lt_peer/" + lt.__version__,
        # Trackers in tests hand out peers once; do not let a long interval hide a late seed.
        "min_announce_interval": 1,
    })
    if args.lsd:
        # Multicast only: the tests are about the BEP 14 group. Default interval 300 s; a short one repeats the
        # announce in case the first datagram went out before the other side joined the group.
        settings["broadcast_lsd"] = False
        settings["local_service_announce_interval"] = args.lsd_interval
    if args.dht_bootstrap:
        settings["enable_dht"] = True
        settings["dht_bootstrap_nodes"] = ",".join(args.dht_bootstrap)
        # With one torrent, libtorrent announces it (get_peers + announce_peer) every interval; a short one means a
        # lookup made before the DHT had bootstrapped, or before the other side announced, is soon repeated.
        settings["dht_announce_interval"] = args.dht_announce_interval
    if args.upload_limit:
        settings["upload_rate_limit"] = args.upload_limit
    if args.download_limit:
        settings["download_rate_limit"] = args.download_limit
    if args.outgoing:
        # Inside namespaces the default source address may equal another peer's, which some clients drop.
        settings["outgoing_interfaces"] = args.outgoing
    ses = lt.session(settings)
    if args.upload_limit or args.download_limit:
        # libtorrent puts loopback and LAN peers in an unlimited "local" class; make every peer global-class.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)

    if args.magnet:
        params = lt.parse_magnet_uri(args.magnet)
        info_hash = str(params.info_hashes.v1)
    else:
        info = lt.torrent_info(args.torrent)
        params = lt.add_torrent_params()
        params.ti = info
        info_hash = str(info.info_hash())
    params.save_path = args.save
    handle = ses.add_torrent(params)

    deadline = time.time() + 10
    while ses.listen_port() == 0 and time.time() < deadline:
        ses.wait_for_alert(100)
        ses.pop_alerts()
    emit({"event": "listening", "port": ses.listen_port(), "infoHash": info_hash})

    peers = [parse_hostport(p) for p in args.peer or []]
    lock = threading.Lock()
    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError:
                emit({"event": "alert", "type": "bad_command", "msg": line})
                continue
            if cmd.get("cmd") == "connect":
                with lock:
                    peers.append((cmd["host"], int(cmd["port"])))
            elif cmd.get("cmd") == "quit":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()

    done_sent = False
    seed_warned = False
    last_status = 0.0
    last_connect = 0.0
    while not stop.is_set():
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.metadata_received_alert):
                emit({"event": "metadata", "infoHash": info_hash})
            cat = a.category()
            if cat & lt.alert.category_t.error_notification or isinstance(
                    a, (lt.peer_connect_alert, lt.peer_disconnected_alert, lt.tracker_error_alert,
                        lt.tracker_reply_alert, lt.hash_failed_alert)):
                emit({"event": "alert", "type": a.what(), "msg": a.message()})
        st = handle.status()
        now = time.time()
        checking = st.state in (lt.torrent_status.states.checking_files,
                                lt.torrent_status.states.checking_resume_data)
        # Re-dial known peers while unconnected: the other side may not be listening yet.
        if not checking and st.num_peers == 0 and now - last_connect > 1.0:
            last_connect = now
            with lock:
                for p in peers:
                    handle.connect_peer(p)
        if now - last_status >= 0.25:
            last_status = now
            emit({"event": "status", "state": STATES.get(int(st.state), str(st.state)),
                  "progress": st.progress, "totalDone": st.total_wanted_done, "totalWanted": st.total_wanted,
                  "downloadRate": st.download_rate, "uploadRate": st.upload_rate,
                  "totalUpload": st.total_payload_upload, "totalDownload": st.total_payload_download,
                  "peers": st.num_peers, "seeds": st.num_seeds, "isSeeding": st.is_seeding,
                  "error": str(st.errc.message()) if st.errc.value() else "",
                  **({"dhtNodes": ses.status().dht_nodes} if args.dht_bootstrap else {})})
        complete = not checking and st.total_wanted > 0 and st.total_wanted_done == st.total_wanted \
            and st.state in (lt.torrent_status.states.seeding, lt.torrent_status.states.finished)
        if args.mode == "seed" and not checking and not complete and not seed_warned:
            seed_warned = True
            emit({"event": "alert", "type": "seed_incomplete",
                  "msg": "seed data failed its check: %.1f%% present" % (st.progress * 100)})
        if complete and not done_sent:
            done_sent = True
            emit({"event": "done", "totalUpload": st.total_payload_upload})
            if args.exit_when_done:
                break
    ses.pause()
    emit({"event": "exit"})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--mode", choices=["seed", "download"], required=True)
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--torrent")
    src.add_argument("--magnet")
    r.add_argument("--save", required=True)
    r.add_argument("--listen", default="127.0.0.1:0")
    r.add_argument("--outgoing", default="")
    r.add_argument("--peer", action="append")
    r.add_argument("--exit-when-done", action="store_true")
    r.add_argument("--lsd", action="store_true")
    r.add_argument("--lsd-interval", type=int, default=2)
    r.add_argument("--upload-limit", type=int, default=0)
    r.add_argument("--download-limit", type=int, default=0)
    r.add_argument("--dht-bootstrap", action="append")
    r.add_argument("--dht-announce-interval", type=int, default=2)
    m = sub.add_parser("make")
    m.add_argument("--path", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--piece-length", type=int, default=262144)
    m.add_argument("--announce", action="append")
    args = ap.parse_args()
    if args.command == "make":
        make(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
