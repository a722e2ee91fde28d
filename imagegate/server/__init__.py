"""The edge: the ASGI server `imagegate serve` runs, and the bounds it puts on clients.

- ``limits``: the bounds (header and body timeouts, the connection cap, the shutdown grace) and the
  open-file limit they need.
- ``uvicorn_edge``: uvicorn's httptools protocol with those bounds, which uvicorn lacks.
- ``drain``: graceful shutdown around the app: requests still running after the grace are
  cancelled, logged, and allowed to unwind (releasing their holds) before the app shuts down.
- ``memory``: large freed blocks go back to the OS at once (glibc's mmap threshold).
- ``run``: starts uvicorn or granian with all of the above.
"""
