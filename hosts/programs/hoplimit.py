"""Hop-limit evidence from plain IPv6 sockets: the TTL lesson in IPv6's words.

hoplimit.py listen PORT            one UDP datagram on [::]; its hop limit (IPV6_RECVHOPLIMIT)
hoplimit.py send ADDR PORT         one UDP datagram with the default hop limit
hoplimit.py trace ADDR [MAX_HOPS]  IPV6_UNICAST_HOPS 1, 2, ... and ICMPv6 errors (IPV6_RECVERR)
"""

import json
import socket

# ttl.py sits beside this file in /opt/hoplab of every node (and in hosts/programs): the probe
# loop, the receive and send sides and the command line are its, given IPv6's socket options.
from ttl import Family, hop_list, main, receive, send_one

IPV6_RECVERR = 25  # Linux value; Python's socket module lacks the name
SO_EE_ORIGIN_ICMP6 = 3
ICMP6_DST_UNREACH = 1

IPV6 = Family(
    af=socket.AF_INET6,
    any_addr="::",
    level=socket.IPPROTO_IPV6,
    hops_option=socket.IPV6_UNICAST_HOPS,
    recv_option=socket.IPV6_RECVHOPLIMIT,
    recv_cmsg=socket.IPV6_HOPLIMIT,
    recverr=IPV6_RECVERR,
    origin_icmp=SO_EE_ORIGIN_ICMP6,
    dest_unreach=ICMP6_DST_UNREACH,
    key="hops",
    addr_at=8,  # sockaddr_in6: family u16, port u16, flowinfo u32, address 16 bytes
    addr_len=16,
)


def listen(port: int) -> None:
    hops, peer, size = receive(port, IPV6)
    print(json.dumps({"hop_limit": hops, "peer": peer[0], "bytes": size}), flush=True)


def send(addr: str, port: int) -> None:
    print(json.dumps({"sent_hop_limit": send_one(addr, port, b"hop-limit probe", IPV6)}))


def trace(addr: str, max_hops: int) -> None:
    print(json.dumps({"destination": addr, "hops": hop_list(addr, max_hops, IPV6)}))


if __name__ == "__main__":
    main(listen, send, trace)
