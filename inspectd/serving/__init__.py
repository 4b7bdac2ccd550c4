"""The networks on a Triton Inference Server (`inspectd serve`) and the daemon's client for them."""
