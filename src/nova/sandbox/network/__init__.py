"""Outbound network for instances that ask for it: slirp4netns plus a per-instance nftables firewall."""
