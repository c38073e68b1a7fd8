"""Pictures of a lab: the topology (graph), packets across hops (ladder), and the HTML report.

graph and ladder are pure: data in, SVG/PNG/text out. Only html reads a running lab, through
hoplab.runtime, to learn the MAC addresses that tie captured frames to nodes.
"""
