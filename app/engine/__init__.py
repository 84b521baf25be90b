"""Maths that knows no threads, sockets or disks: network, optimizers, data, metrics, trainer."""
