"""Hop-limit evidence from plain IPv6 sockets: the TTL lesson in IPv6's words.

hoplimit.py listen PORT            one UDP datagram on [::]; its hop limit (IPV6_RECVHOPLIMIT)
hoplimit.py send ADDR PORT         one UDP datagram with the default hop limit
hoplimit.py trace ADDR [MAX_HOPS]  IPV6_UNICAST_HOPS 1, 2, ... and ICMPv6 errors (IPV6_RECVERR)
"""

# ttl.py sits beside this file in /opt/hoplab of every node (and in hosts/programs): the whole
# program is its, run with IPv6's socket options.
from ttl import IPV6, main

if __name__ == "__main__":
    main(IPV6)
