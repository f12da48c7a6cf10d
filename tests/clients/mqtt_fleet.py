"""A fleet of MQTT devices publishing QoS 1 JSON readings through paho-mqtt
(the Eclipse Python client): what bridge_e2e_test and scripts/bench-ingress.sh
use as devices nobody here wrote.

Each message is one device's document {"device_id", "timestamp", "metrics",
"meta"} on telemetry/<tenant>/<device>; message i of a device has timestamp
start + i seconds, so every reading is unique and the expected count is
devices * messages * metrics. A message counts as sent once the broker's
PUBACK came. When the connection drops (a broker restart) the client
reconnects and sends again what was not acknowledged: at least once, which
the platform de-duplicates.

  python mqtt_fleet.py --host H --port P --user U --password W --tenant T \
      --devices 100 --messages 20 --metrics 4 [--rate 0 (msgs/s, 0 = as fast as acked)]
      [--inflight 200] [--start_s <epoch s>]
Prints one JSON line: {"sent": n, "seconds": s, "reconnects": r}.
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--metrics", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--inflight", type=int, default=200)
    ap.add_argument("--start_s", type=int, default=int(time.time()) - 86400)
    ap.add_argument("--client_id", default="")
    a = ap.parse_args()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id,
                         clean_session=True)
    client.username_pw_set(a.user, a.password)
    client.max_inflight_messages_set(a.inflight)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    reconnects = [0]
    closing = threading.Event()

    def on_connect(c, userdata, flags, reason, props):
        if not reason.is_failure:
            connected.set()

    def on_disconnect(c, userdata, flags, reason, props):
        connected.clear()
        if not closing.is_set():
            reconnects[0] += 1

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(0.1, 1)
    client.connect(a.host, a.port, keepalive=10)
    client.loop_start()
    if not connected.wait(10):
        print("cannot connect", file=sys.stderr)
        return 2

    def payload(dev, i):
        return json.dumps({
            "device_id": "dev-%d" % dev,
            "timestamp": a.start_s + i,
            "metrics": {"m%d" % k: dev * 1000 + i + k / 10 for k in range(a.metrics)},
            "meta": {"fleet": "e2e", "fw": "1.%d" % (dev % 3)},
        })

    started = time.time()
    sent = 0
    window = []  # (MQTTMessageInfo, topic, payload)

    def published(info):
        try:
            return info.is_published()
        except (RuntimeError, ValueError):  # publish() failed: not connected
            return False

    def drain(limit):
        # Waits until at most `limit` messages are unacknowledged; after a
        # lost connection, sends again what was not acknowledged.
        nonlocal window
        while len(window) > limit:
            info = window[0][0]
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                try:
                    info.wait_for_publish(timeout=5)
                except (RuntimeError, ValueError):
                    pass
            if published(info):
                window.pop(0)
                continue
            if not connected.wait(60):
                raise SystemExit("no connection to the broker for 60 s")
            window = [(w if published(w) else client.publish(t, b, qos=1), t, b)
                      for (w, t, b) in window]

    for i in range(a.messages):
        for dev in range(a.devices):
            topic = "telemetry/%s/dev-%d" % (a.tenant, dev)
            body = payload(dev, i)
            window.append((client.publish(topic, body, qos=1), topic, body))
            sent += 1
            drain(a.inflight)
            if a.rate > 0:
                ahead = sent / a.rate - (time.time() - started)
                if ahead > 0:
                    time.sleep(ahead)
    drain(0)
    closing.set()
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"sent": sent, "seconds": round(time.time() - started, 3),
                      "reconnects": reconnects[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
