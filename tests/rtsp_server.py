"""A small RTSP server for tests: GStreamer's gst-rtsp-server (Debian's packages, not ours)
serving one video file, looped, as H.264 at ``rtsp://127.0.0.1:PORT/clip``.

Run with the system Python, which has PyGObject: ``/usr/bin/python3 tests/rtsp_server.py PORT
FILE``. It prints ``ready`` once it listens and serves until SIGTERM. Needs
gir1.2-gst-rtsp-server-1.0, python3-gst-1.0 and the good/bad/ugly/libav plugins (``./run test``
installs them).
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port, path = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! decodebin ! videoconvert ! videoscale'
        " ! video/x-raw,width=320,height=240 ! x264enc tune=zerolatency speed-preset=ultrafast"
        " key-int-max=10 bitrate=400 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
