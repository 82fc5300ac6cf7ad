"""The device agent (``homecare agent``): the home side of the contract on real hardware, with
video from a V4L2 camera, an RTSP camera or a file. It shares :mod:`homeside` with the simulators
and nothing with the backend but the wire contract (:mod:`devices`) and the motion kernel
(:mod:`vision`)."""
