#!/usr/bin/python3
"""libtorrent's DHT for Shoal's DHT interop test, driven by dht-libtorrent.test.ts.

  lt_dht.py --bootstrap IP:PORT [--listen IP:PORT]

Prints JSON lines: {"event":"listening","port":N} first, then {"event":"dht_nodes","count":N} every 500 ms,
{"event":"get_peers_reply","infoHash":HEX,"peers":["ip:port",...]}, {"event":"alert",...} for DHT alerts.
Commands on stdin (JSON lines): {"cmd":"add_magnet","infoHash":HEX,"save":DIR} adds a torrent by info-hash
(libtorrent then announces it on the DHT with its listen port), {"cmd":"get_peers","infoHash":HEX},
{"cmd":"announce","infoHash":HEX,"port":P}. EOF on stdin makes it exit.
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
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    args = ap.parse_args()
    settings = {
        "enable_dht": True,
        "dht_bootstrap_nodes": args.bootstrap,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "listen_interfaces": args.listen,
        "outgoing_interfaces": args.listen.rpartition(":")[0],
        "alert_mask": int(lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification
                          | lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification | lt.alert.category_t.peer_notification),
        # libtorrent's defaults otherwise: dht_restrict_routing_ips / dht_restrict_search_ips (one node per IP),
        # dht_block_ratelimit (5 queries/s per IP) and dht_enforce_node_id (off) did not need changing; checked by
        # running this test with each of them at its default (both tests pass; libtorrent 2.0.8 still queried
        # several Shoal nodes on 127.0.0.1). The one thing needed is dht_operation_notification in the alert mask:
        # dht_get_peers_reply_alert is in that category.
        "allow_multiple_connections_per_ip": True,
        "user_agent": "lt_dht/" + lt.__version__,
    }
    ses = lt.session(settings)
    deadline = time.time() + 10
    while ses.listen_port() == 0 and time.time() < deadline:
        ses.wait_for_alert(100)
        ses.pop_alerts()
    emit({"event": "listening", "port": ses.listen_port()})

    cmds = []
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
                continue
            with lock:
                cmds.append(cmd)
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    last_nodes = 0.0
    while not stop.is_set():
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_get_peers_reply_alert):
                emit({"event": "get_peers_reply", "infoHash": str(a.info_hash),
                      "peers": ["%s:%d" % (p[0], p[1]) for p in a.peers()]})
            elif isinstance(a, (lt.dht_announce_alert, lt.dht_bootstrap_alert, lt.dht_reply_alert)) \
                    or a.category() & lt.alert.category_t.error_notification:
                emit({"event": "alert", "type": a.what(), "msg": a.message()})
        with lock:
            todo, cmds[:] = list(cmds), []
        for cmd in todo:
            c = cmd.get("cmd")
            if c == "add_magnet":
                p = lt.add_torrent_params()
                p.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(cmd["infoHash"])))
                p.save_path = cmd["save"]
                ses.add_torrent(p)
            elif c == "get_peers":
                ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(cmd["infoHash"])))
            elif c == "announce":
                ses.dht_announce(lt.sha1_hash(bytes.fromhex(cmd["infoHash"])), int(cmd["port"]), 0)
        now = time.time()
        if now - last_nodes >= 0.5:
            last_nodes = now
            st = ses.status()
            emit({"event": "dht_nodes", "count": st.dht_nodes})
    emit({"event": "exit"})


if __name__ == "__main__":
    main()
