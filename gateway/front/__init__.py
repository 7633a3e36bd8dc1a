"""The front: what clients talk to, over HTTP or stdio, in either era, up to the call into the guard."""
