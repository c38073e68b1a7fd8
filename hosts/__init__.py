"""The node image's build context and the programs that run inside nodes, shipped as package
data (hoplab.hosts) so that an installed hoplab can build hoplab/node anywhere."""
