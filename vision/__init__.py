"""The motion check's pure kernel and its verdict: run by the backend's WebRTC probe and by the
device agent on its own frames (the home probe), so both judge the same picture the same way."""
