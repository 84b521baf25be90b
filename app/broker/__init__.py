"""Backbeat across processes and machines on Redis (`backbeat --broker redis://...`).

Nothing here is imported without `--broker`: the embedded server never needs Redis.
"""
